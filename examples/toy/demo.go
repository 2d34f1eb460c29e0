package main

import (
	"flag"
	"fmt"
	"image"
	"io"
	"math/rand/v2"

	"github.com/onestepvideo/osv-go/examples/toy/world"
	"github.com/onestepvideo/osv-go/lora"
	"github.com/onestepvideo/osv-go/osv/media"
	"github.com/onestepvideo/osv-go/unet"
)

// runDemo generates one clip with the distilled toy student (the
// committed teacher with the student's LoRA adapters merged) from a first
// frame of the world, in one step and the Time Travel Sampler's second
// solve, and writes it as a GIF.
func runDemo(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("toy demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "examples/toy/teacher", "the UNet folder the adapters go on (the toy teacher)")
	adapters := fs.String("lora", "examples/toy/student-lora", "the student's LoRA adapters (peft folder); empty: the UNet alone")
	out := fs.String("out", ".build/demo.gif", "GIF to write")
	seed := fs.Uint64("seed", 3, "which first frame of the world (and the noise)")
	steps := fs.String("sampler", "tts", "tts (one step and a travel step, 2 evaluations), 1 (one step), or teacher (the UNet without adapters, guided Euler: by default 25 steps at guidance 1→10, as the table's teacher row)")
	teacherSteps := fs.Int("teacher-steps", 25, "-sampler teacher: the Euler steps")
	guidance := fs.Float64("guidance", demoTeacherGuidance, "-sampler teacher: the last frame's guidance (the first frame's is 1)")
	travel := fs.Float64("travel", 0, "the noise level tts travels back to (0: the middle of the 3-level Karras schedule)")
	device := fs.String("device", "cpu", "cpu, cuda or cuda:N")
	check := fs.Int("check", 0, "also generate this many held-out clips and measure them against the demo's bar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sm, err := demoSampler(*steps, *travel)
	if err != nil {
		return err
	}
	if *steps == "teacher" {
		if *teacherSteps < 1 || !(*guidance >= 1) {
			return fmt.Errorf("-teacher-steps %d -guidance %g: want at least 1 step and a guidance of at least 1", *teacherSteps, *guidance)
		}
		sm = teacherSampler(*teacherSteps, 1, *guidance)
	}
	if *steps == "teacher" {
		*adapters = ""
	}
	u, err := loadStudent(*model, *adapters, *device)
	if err != nil {
		return err
	}
	defer u.Close()
	wc := world.DefaultConfig()
	clip := wc.Sample(rand.New(rand.NewPCG(*seed, 0)))
	px, m, err := generateOne(u, wc, clip, *seed, sm)
	if err != nil {
		return err
	}
	if err := writeClipGIF(*out, wc, px); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s: %d frames, %s (%d evaluations); tracked speed %.2f px/frame, persistence %.2f, background %.3f\n",
		*out, wc.Frames, samplerLabel(sm), sm.nfe, m.Speed, m.Persistence, wc.Background(px))
	ch := checkClip(wc, clip, px)
	fmt.Fprintf(stderr, "the clip: %s; %s\n", ch, barVerdict(ch.failures(wc)))
	if *check > 0 {
		clips := heldOutClips(*check)
		es := newEvalSet(wc, clips, len(clips), 5)
		gen, _, err := es.generate(u, sm, clips, es.seed)
		if err != nil {
			return err
		}
		rep, err := scoreDemo(wc, clips, gen)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%d held-out clips: %s; %s\n", *check, rep, barVerdict(rep.failures()))
		fmt.Fprintf(stderr, "FD by feature, its largest terms (each feature's own Fréchet distance, in the true clips' deviations): %s\n", rep.largestTerms(3))
		fmt.Fprintf(stderr, "objects lost: %s\n", rep.lostByFrame())
	}
	return nil
}

// demoSampler is the -sampler flag's sampler; travel, when not 0, is the
// level tts travels back to.
func demoSampler(name string, travel float64) (sampler, error) {
	if travel != 0 && (name != "tts" || !(travel > 0 && travel < sigmaMax)) {
		return sampler{}, fmt.Errorf("-travel %g: want a level in (0, %g) with -sampler tts", travel, float64(sigmaMax))
	}
	switch name {
	case "tts":
		if travel != 0 {
			return studentTTSAt(travel, true), nil
		}
		return studentTTS(), nil
	case "1":
		return studentSteps(1), nil
	case "teacher":
		return teacherSampler(25, 1, demoTeacherGuidance), nil
	}
	return sampler{}, fmt.Errorf("-sampler %q: want tts, 1 or teacher", name)
}

// demoTeacherGuidance is the last frame's guidance of -sampler teacher:
// the committed teacher's table row.
const demoTeacherGuidance = 10

// loadStudent loads a UNet folder and merges a peft adapter folder into it
// (none when adapters is empty).
func loadStudent(model, adapters, device string) (*unet.Model, error) {
	u, err := unet.Load(model, unet.WithDevice(device))
	if err != nil {
		return nil, err
	}
	if adapters == "" {
		return u, nil
	}
	set, err := lora.Load(u, adapters)
	if err == nil {
		err = set.Merge()
	}
	if err != nil {
		u.Close()
		return nil, err
	}
	return u, nil
}

// generateOne generates a clip from clip's first frame with sm.
func generateOne(u *unet.Model, wc world.Config, clip world.Clip, seed uint64, sm sampler) (px []float32, m world.Motion, err error) {
	es := newEvalSet(wc, []world.Clip{clip}, 1, seed)
	out, _, err := es.generate(u, sm, []world.Clip{clip}, seed)
	if err != nil {
		return nil, m, err
	}
	return out[0], wc.MeasureMotion(out[0]), nil
}

// writeClipGIF writes a clip's pixels (F×3×S×S in [−1, 1]) as a GIF at
// 8 frames per second, each pixel drawn as a 3×3 block.
func writeClipGIF(path string, wc world.Config, px []float32) error {
	const scale = 3
	per := 3 * wc.Size * wc.Size
	frames := make([]image.Image, 0, wc.Frames)
	for f := range wc.Frames {
		big := make([]float32, 0, per*scale*scale)
		for c := range 3 {
			for y := range wc.Size * scale {
				row := px[f*per+c*wc.Size*wc.Size+(y/scale)*wc.Size:]
				for x := range wc.Size * scale {
					big = append(big, (row[x/scale]+1)/2)
				}
			}
		}
		img, err := media.FromCHW(big, wc.Size*scale, wc.Size*scale)
		if err != nil {
			return err
		}
		frames = append(frames, img)
	}
	return media.WriteGIF(path, frames, 8)
}
