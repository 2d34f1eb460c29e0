module github.com/onestepvideo/osv-go

go 1.26.0

require (
	github.com/stretchr/testify v1.12.1
	github.com/wangkuiyi/gotorch v0.0.0-20201028015551-9afed2f3ad7b
	golang.org/x/sync v0.25.0
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
