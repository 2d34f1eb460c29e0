package main

import (
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/clip"
	"github.com/onestepvideo/osv-go/osv/vae"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/unet"
)

// randomPipeline is SVD's image-to-video pipeline at its full size (the
// UNet, VAE and image encoder of the default configs) with random
// weights: what a checkpoint would cost, without one. Its videos are
// noise.
func randomPipeline(device, dtype string) (*osv.Pipeline, error) {
	u, err := unet.New(unet.DefaultConfig(), unet.WithDevice(device), unet.WithDType(dtype))
	if err != nil {
		return nil, err
	}
	v, err := vae.New(vae.DefaultConfig(), vae.WithDevice(device), vae.WithDType(dtype))
	if err != nil {
		u.Close()
		return nil, err
	}
	enc, err := clip.New(clip.DefaultConfig(), clip.WithDevice(device), clip.WithDType(dtype))
	if err != nil {
		u.Close()
		v.Close()
		return nil, err
	}
	p, err := osv.NewPipeline(u, v, enc, clip.DefaultPreprocessor(), solver.DefaultSchedulerConfig())
	if err != nil {
		u.Close()
		v.Close()
		enc.Close()
		return nil, err
	}
	return p, nil
}
