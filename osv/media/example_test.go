package media_test

import (
	"fmt"
	"image"

	"github.com/onestepvideo/osv-go/osv/media"
)

func ExampleFit() {
	photo := image.NewRGBA(image.Rect(0, 0, 640, 480)) // a 4:3 photo
	crop := media.Fit(photo, 1024, 576, media.FitCrop)
	stretch := media.Fit(photo, 1024, 576, media.FitStretch)
	fmt.Println(crop.Bounds().Size(), stretch.Bounds().Size())
	// Output: (1024,576) (1024,576)
}

func ExampleFramesFromBFCHW() {
	// One clip of two 1×1 frames: grey, then white.
	data := []float32{0.5, 0.5, 0.5, 1, 1, 1}
	clips, err := media.FramesFromBFCHW(data, 1, 2, 3, 1, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range clips[0] {
		fmt.Println(f.At(0, 0))
	}
	// Output:
	// {128 128 128 255}
	// {255 255 255 255}
}

func ExampleParseFitMode() {
	m, err := media.ParseFitMode("stretch")
	fmt.Println(m, err)
	_, err = media.ParseFitMode("zoom")
	fmt.Println(err)
	// Output:
	// stretch <nil>
	// media: unknown fit mode "zoom" (want crop or stretch)
}
