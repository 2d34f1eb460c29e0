// Command img2vid turns a picture into a video with a Stable Video
// Diffusion pipeline folder (Hugging Face layout).
//
//	img2vid -model DIR -image FILE -out FILE [flags]
//
// The output is a GIF (.gif), an MP4 (.mp4, through the ffmpeg program) or
// a folder of PNG frames (any other path without an extension). An image
// of another size is scaled to cover -width×-height and centre-cropped
// (-fit stretch scales without keeping the aspect ratio). A progress line
// per step goes to stderr; errors exit with status 1 and one line.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/media"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "img2vid:", oneLine(err))
		os.Exit(1)
	}
}

func oneLine(err error) string {
	s := err.Error()
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

func run(args []string, stderr io.Writer) error {
	flag := flag.NewFlagSet("img2vid", flag.ContinueOnError)
	flag.SetOutput(stderr)
	model := flag.String("model", "", "SVD pipeline folder (model_index.json, unet/, vae/, ...)")
	imagePath := flag.String("image", "", "conditioning image (PNG or JPEG)")
	out := flag.String("out", "", "output: .gif, .mp4, or a folder for PNG frames")
	frames := flag.Int("frames", 0, "frames (default: the UNet config's num_frames)")
	width := flag.Int("width", 1024, "width in pixels")
	height := flag.Int("height", 576, "height in pixels")
	steps := flag.Int("steps", 25, "denoising steps")
	seed := flag.Uint64("seed", 0, "random seed")
	device := flag.String("device", "cpu", "cpu, cuda or cuda:N")
	dtype := flag.String("dtype", "fp32", "fp32, fp16 or bf16")
	minG := flag.Float64("min-guidance", 1, "guidance scale of the first frame")
	maxG := flag.Float64("max-guidance", 3, "guidance scale of the last frame")
	fps := flag.Int("fps", 7, "frames per second (conditioning and output)")
	bucket := flag.Int("motion-bucket", 127, "motion bucket id")
	aug := flag.Float64("noise-aug", 0.02, "noise added to the conditioning image")
	chunk := flag.Int("decode-chunk", 0, "frames decoded at once (default: all)")
	fit := flag.String("fit", "crop", "crop or stretch, for images of another size")
	if err := flag.Parse(args); err != nil {
		return err
	}
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	if *model == "" || *imagePath == "" || *out == "" {
		return fmt.Errorf("-model, -image and -out are required (see -help)")
	}
	if *frames < 0 || (*frames == 0 && isSet(flag, "frames")) {
		return fmt.Errorf("-frames %d: want at least 1", *frames)
	}
	if *steps < 1 {
		return fmt.Errorf("-steps %d: want at least 1", *steps)
	}
	if *width < 1 || *height < 1 || *width%8 != 0 || *height%8 != 0 {
		return fmt.Errorf("-width %d -height %d: want positive multiples of 8", *width, *height)
	}
	if *fps < 1 {
		return fmt.Errorf("-fps %d: want at least 1", *fps)
	}
	fitMode, err := media.ParseFitMode(*fit)
	if err != nil {
		return err
	}
	img, err := media.LoadImage(*imagePath)
	if err != nil {
		return err
	}
	t0 := time.Now()
	p, err := osv.LoadPipeline(*model, osv.WithDevice(*device), osv.WithDType(*dtype))
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(stderr, "loaded %s on %s (%s) in %.1fs\n", *model, *device, *dtype, time.Since(t0).Seconds())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	t1 := time.Now()
	v, err := p.Generate(ctx, img, osv.GenerateOptions{
		Width: *width, Height: *height, NumFrames: *frames, NumInferenceSteps: *steps,
		MinGuidanceScale: *minG, MaxGuidanceScale: *maxG, FPS: *fps, MotionBucketID: *bucket,
		NoiseAugStrength: aug, DecodeChunkSize: *chunk, Seed: *seed, Fit: fitMode,
		Progress: func(step, total int) {
			fmt.Fprintf(stderr, "step %d/%d  %.1fs\n", step, total, time.Since(t1).Seconds())
		},
	})
	if err != nil {
		return err
	}
	defer osv.Release(v.Tensor)
	if err := media.WriteVideo(*out, v.Frames, float64(*fps)); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s: %d frames %dx%d in %.1fs\n", *out, len(v.Frames), *width, *height, time.Since(t1).Seconds())
	return nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
