module example.com/osv-recipe

go 1.26.0

require github.com/onestepvideo/osv-go v0.0.0

require (
	github.com/wangkuiyi/gotorch v0.0.0-20201028015551-9afed2f3ad7b // indirect
	golang.org/x/sync v0.25.0 // indirect
)

replace github.com/onestepvideo/osv-go => ../..
