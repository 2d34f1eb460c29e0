// Command img2vid turns a picture into a video with a Stable Video
// Diffusion pipeline folder (Hugging Face layout), with SVD's own UNet (the
// teacher) or a distilled student.
//
//	img2vid -model DIR -image FILE -out FILE [flags]
//
// A student replaces the pipeline's UNet (-unet: a diffusers UNet folder,
// or one safetensors file holding a full state_dict laid out by the
// pipeline's unet/config.json, as AnimateLCM-SVD-xt publishes it) or adds
// a peft LoRA folder to it (-lora, merged into the weights), and runs with
// its sampler: -sampler consistency (multistep consistency sampling on the
// -schedule it was trained on, 4 steps) or -sampler tts (OSV's Time Travel
// Sampler, 1 step). What examples/distill exports runs with
//
//	img2vid -model svd -lora run2/export/lora -sampler tts -steps 1 -image in.png -out clip.gif
//
// -steps and the guidance flags left unset take the sampler's defaults:
// euler 25 steps with guidance 1 (first frame) to 3 (last); consistency 4
// steps and tts 1 step, both without guidance.
//
// The output is a GIF (.gif), an MP4 (.mp4, through the ffmpeg program) or
// a folder of PNG frames (any other path without an extension). An image
// of another size is scaled to cover -width×-height and centre-cropped
// (-fit stretch scales without keeping the aspect ratio). A progress line
// per step goes to stderr; errors exit with status 1 and one line.
package main

import (
	"context"
	"errors"
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
	if err := run(os.Args[1:], os.Stderr); errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
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
	steps := flag.Int("steps", 0, "sampler steps (default: the sampler's, euler 25, consistency 4, tts 1)")
	seed := flag.Uint64("seed", 0, "random seed")
	device := flag.String("device", "cpu", "cpu, cuda or cuda:N")
	dtype := flag.String("dtype", "fp32", "fp32, fp16 or bf16")
	minG := flag.Float64("min-guidance", 0, "guidance scale of the first frame (default: the sampler's, 1)")
	maxG := flag.Float64("max-guidance", 0, "guidance scale of the last frame (default: the sampler's, euler 3, the students 1: no guidance)")
	unetPath := flag.String("unet", "", "a student's UNet replacing the pipeline's: a diffusers UNet folder or a single state_dict .safetensors file")
	loraDir := flag.String("lora", "", "a student's peft LoRA folder (adapter_config.json, adapter_model.safetensors), merged into the UNet")
	samplerName := flag.String("sampler", "euler", "euler (the teacher's, with guidance), consistency or tts (a distilled student's)")
	schedule := flag.String("schedule", "osv", "the consistency sampler's σ schedule: osv (OSV's training grid) or animatelcm (AnimateLCM-SVD's)")
	fps := flag.Int("fps", 7, "frames per second (conditioning and output)")
	bucket := flag.Int("motion-bucket", 127, "motion bucket id")
	aug := flag.Float64("noise-aug", 0.02, "noise added to the conditioning image")
	chunk := flag.Int("decode-chunk", 0, "frames decoded at once (default: all)")
	fit := flag.String("fit", "crop", "crop or stretch, for images of another size")
	flag.Usage = func() { usage(flag) }
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
	if *steps < 0 || (*steps == 0 && isSet(flag, "steps")) {
		return fmt.Errorf("-steps %d: want at least 1", *steps)
	}
	if *minG < 0 || *maxG < 0 {
		return fmt.Errorf("-min-guidance %g -max-guidance %g: want ≥ 0", *minG, *maxG)
	}
	sampler, err := parseSampler(*samplerName, *schedule, isSet(flag, "schedule"))
	if err != nil {
		return err
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
	opts := []osv.Option{osv.WithDevice(*device), osv.WithDType(*dtype)}
	loaded := *model
	if *unetPath != "" {
		opts = append(opts, osv.WithUNet(*unetPath))
		loaded += " with the UNet " + *unetPath
	}
	if *loraDir != "" {
		opts = append(opts, osv.WithLoRA(*loraDir))
		loaded += " with the LoRA " + *loraDir
	}
	p, err := osv.LoadPipeline(*model, opts...)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(stderr, "loaded %s on %s (%s) in %.1fs\n", loaded, *device, *dtype, time.Since(t0).Seconds())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	t1 := time.Now()
	v, err := p.Generate(ctx, img, osv.GenerateOptions{
		Sampler: sampler, Width: *width, Height: *height, NumFrames: *frames, NumInferenceSteps: *steps,
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

// parseSampler is the -sampler flag's sampler, with -schedule for the
// consistency sampler (scheduleSet: -schedule was given).
func parseSampler(name, schedule string, scheduleSet bool) (osv.Sampler, error) {
	if scheduleSet && name != "consistency" {
		return nil, fmt.Errorf("-schedule %s: only -sampler consistency takes a schedule", schedule)
	}
	sampler, err := osv.SamplerByName(name, schedule)
	if err != nil {
		return nil, fmt.Errorf("-%w", err)
	}
	return sampler, nil
}

// usage prints the synopsis, the student's commands and the flags.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `usage: img2vid -model DIR -image FILE -out FILE [flags]

The teacher (SVD's Euler sampler with guidance 1 to 3, 25 steps):
  img2vid -model svd -image in.png -out clip.gif
A distilled student as examples/distill exports it (OUT/export), one step:
  img2vid -model svd -lora run2/export/lora -sampler tts -steps 1 -image in.png -out clip.gif
the same student as a merged UNet folder, four consistency steps:
  img2vid -model svd -unet run2/export/unet -sampler consistency -steps 4 -image in.png -out clip.gif
a single-file state_dict on AnimateLCM-SVD's schedule:
  img2vid -model svd -unet student.safetensors -sampler consistency -schedule animatelcm -image in.png -out clip.gif

-steps and the guidance flags left unset take the sampler's defaults:
euler 25 steps with guidance 1 (first frame) to 3 (last); consistency 4
steps and tts 1 step, both without guidance.

Flags:
`)
	fs.PrintDefaults()
}
