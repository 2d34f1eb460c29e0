package main

import (
	"bytes"
	"flag"
	"image/gif"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/lora"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/torch"
)

// pipelineCase is the size io/pipeline.json gives the fixture pipeline's
// video, as flag values and numbers.
type pipelineCase struct {
	Width     int `json:"width"`
	Height    int `json:"height"`
	NumFrames int `json:"num_frames"`
}

func readCase(t *testing.T) pipelineCase {
	t.Helper()
	var c pipelineCase
	require.NoError(t, fixture.JSON("pipeline", &c))
	require.Positive(t, c.Width, "io/pipeline.json: width")
	require.Positive(t, c.Height, "io/pipeline.json: height")
	require.Positive(t, c.NumFrames, "io/pipeline.json: num_frames")
	return c
}

// size is the -width and -height flags of the case.
func (c pipelineCase) size() []string {
	return []string{"-width", strconv.Itoa(c.Width), "-height", strconv.Itoa(c.Height)}
}

// readGIF decodes a GIF and checks its size and frame count.
func readGIF(t *testing.T, path string, c pipelineCase) *gif.GIF {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	g, err := gif.DecodeAll(f)
	require.NoError(t, err)
	require.Len(t, g.Image, c.NumFrames)
	require.Equal(t, c.Width, g.Config.Width)
	require.Equal(t, c.Height, g.Config.Height)
	return g
}

func TestImg2VidWritesAGIF(t *testing.T) {
	c := readCase(t)
	out := filepath.Join(t.TempDir(), "clip.gif")
	var log bytes.Buffer
	err := run(append([]string{
		"-model", fixture.Path("pipeline"), "-image", fixture.Path("io", "pipeline_input.png"), "-out", out,
		"-frames", strconv.Itoa(c.NumFrames), "-steps", "2", "-seed", "1",
	}, c.size()...), &log)
	require.NoError(t, err, log.String())
	require.Contains(t, log.String(), "step 2/2")
	readGIF(t, out, c)
}

func TestImg2VidRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.png")
	require.NoError(t, os.WriteFile(text, []byte("not an image"), 0o644))
	incomplete := filepath.Join(dir, "incomplete")
	require.NoError(t, os.MkdirAll(incomplete, 0o755))
	index, err := os.ReadFile(fixture.Path("pipeline", "model_index.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(incomplete, "model_index.json"), index, 0o644))

	model, img, out := fixture.Path("pipeline"), fixture.Path("io", "pipeline_input.png"), filepath.Join(dir, "o.gif")
	base := func(extra ...string) []string {
		return append(append([]string{"-model", model, "-image", img, "-out", out, "-steps", "1"}, readCase(t).size()...), extra...)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-image", img, "-out", out}, "required"},
		{[]string{"-model", model, "-image", text, "-out", out}, "notes.png"},
		{[]string{"-model", model, "-image", filepath.Join(dir, "missing.png"), "-out", out}, "missing.png"},
		{[]string{"-model", filepath.Join(dir, "nomodel"), "-image", img, "-out", out}, "model_index.json"},
		{[]string{"-model", incomplete, "-image", img, "-out", out}, "no unet/ component"},
		{base("-width", "100"), "multiples of 8"},
		{base("-width", "136"), "multiples of"},
		{base("-frames", "0"), "-frames 0"},
		{base("-steps", "0"), "-steps 0"},
		{base("-fit", "squash"), "squash"},
		{append(base(), "extra"), "unexpected argument"},
	} {
		var log bytes.Buffer
		err := run(c.args, &log)
		require.Error(t, err, strings.Join(c.args, " "))
		require.Contains(t, err.Error(), c.want)
		require.NotContains(t, oneLine(err), "\n")
	}
}

// studentFiles writes a student two ways from the fixture pipeline: a peft
// LoRA folder (random B, so that it changes the video) and a single
// state_dict file of the UNet with those adapters merged in.
func studentFiles(t *testing.T) (loraDir, stateDict string) {
	t.Helper()
	p, err := osv.LoadPipeline(fixture.Path("pipeline"))
	require.NoError(t, err)
	defer p.Close()
	set, err := lora.Inject(p.UNet, lora.DefaultConfig(2), 1)
	require.NoError(t, err)
	defer set.Close()
	g, err := torch.NewGenerator(2)
	require.NoError(t, err)
	defer g.Close()
	for _, prm := range set.Trainable() {
		if strings.HasSuffix(prm.Name, ".lora_B.weight") {
			s := torch.NewScope()
			b, err := g.Randn(s, prm.Shape, torch.Float32, torch.CPU)
			require.NoError(t, err)
			nt, err := s.MulScalar(b, 0.05).To(nil, torch.Float32, torch.CPU)
			s.Close()
			require.NoError(t, err)
			prm.T.Free()
			prm.T = nt
		}
	}
	dir := t.TempDir()
	loraDir = filepath.Join(dir, "export", "lora")
	require.NoError(t, set.Save(loraDir))
	require.NoError(t, set.Merge())
	ts := map[string]*torch.Tensor{}
	for _, prm := range p.UNet.Params().List() {
		ts[prm.Name] = prm.T
	}
	stateDict = filepath.Join(dir, "student.safetensors")
	require.NoError(t, torch.SaveFile(stateDict, ts, map[string]string{"format": "pt"}))
	return loraDir, stateDict
}

func TestImg2VidRunsAStudent(t *testing.T) {
	loraDir, stateDict := studentFiles(t)
	cfg := readCase(t)
	model, img := fixture.Path("pipeline"), fixture.Path("io", "pipeline_input.png")
	gifs := map[string]*gif.GIF{}
	for _, c := range []struct {
		name  string
		args  []string
		steps string
	}{
		{"lora tts", []string{"-lora", loraDir, "-sampler", "tts", "-steps", "1"}, "step 1/1"},
		{"state_dict consistency", []string{"-unet", stateDict, "-sampler", "consistency", "-steps", "4"}, "step 4/4"},
		{"state_dict animatelcm", []string{"-unet", stateDict, "-sampler", "consistency", "-schedule", "animatelcm", "-steps", "2"}, "step 2/2"},
		{"tts default steps", []string{"-lora", loraDir, "-sampler", "tts"}, "step 1/1"},
		{"consistency default steps", []string{"-lora", loraDir, "-sampler", "consistency"}, "step 4/4"},
		{"euler default steps", nil, "step 25/25"},
		{"teacher tts", []string{"-sampler", "tts", "-steps", "1"}, "step 1/1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.gif")
			var log bytes.Buffer
			args := append(append([]string{"-model", model, "-image", img, "-out", out, "-frames", strconv.Itoa(cfg.NumFrames), "-seed", "1"}, cfg.size()...), c.args...)
			require.NoError(t, run(args, &log), log.String())
			require.Contains(t, log.String(), c.steps)
			for _, a := range c.args {
				if a == loraDir || a == stateDict {
					require.Contains(t, log.String(), a, "the log names the student")
				}
			}
			gifs[c.name] = readGIF(t, out, cfg)
		})
	}
	// The student's adapters change the video.
	student, teacher := gifs["lora tts"], gifs["teacher tts"]
	require.NotNil(t, student)
	require.NotNil(t, teacher)
	require.NotEqual(t, teacher.Image[0].Pix, student.Image[0].Pix)
}

func TestImg2VidRejectsBadStudents(t *testing.T) {
	loraDir, stateDict := studentFiles(t)
	dir := t.TempDir()
	// A LoRA whose targets are not layers of the UNet.
	other := filepath.Join(dir, "other-lora")
	require.NoError(t, os.MkdirAll(other, 0o755))
	w, err := os.ReadFile(filepath.Join(loraDir, "adapter_model.safetensors"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(other, "adapter_model.safetensors"), w, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(other, "adapter_config.json"),
		[]byte(`{"peft_type": "LORA", "r": 2, "lora_alpha": 2, "target_modules": ["q_proj"]}`), 0o644))
	cut := filepath.Join(dir, "cut.safetensors")
	b, err := os.ReadFile(stateDict)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cut, b[:len(b)/2], 0o644))
	vaeWeights := fixture.Path("pipeline", "vae", "diffusion_pytorch_model.safetensors")
	missing := filepath.Join(dir, "missing")

	model, img, out := fixture.Path("pipeline"), fixture.Path("io", "pipeline_input.png"), filepath.Join(dir, "o.gif")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"-unet", missing}, []string{missing}},
		{[]string{"-unet", vaeWeights}, []string{vaeWeights, "missing keys", "unexpected keys"}},
		{[]string{"-unet", cut}, []string{cut}},
		{[]string{"-lora", missing}, []string{missing}},
		{[]string{"-lora", stateDict}, []string{stateDict, "not a folder"}},
		{[]string{"-lora", other}, []string{filepath.Join(other, "adapter_config.json"), "q_proj"}},
		{[]string{"-unet", stateDict, "-lora", other}, []string{"no layer matches"}},
		{[]string{"-sampler", "ddim"}, []string{"-sampler \"ddim\""}},
		{[]string{"-sampler", "consistency", "-schedule", "karras"}, []string{"-schedule \"karras\""}},
		{[]string{"-sampler", "tts", "-schedule", "animatelcm"}, []string{"only -sampler consistency"}},
		{[]string{"-max-guidance", "-1"}, []string{"-max-guidance -1"}},
	} {
		var log bytes.Buffer
		args := append(append([]string{"-model", model, "-image", img, "-out", out, "-steps", "1"}, readCase(t).size()...), c.args...)
		err := run(args, &log)
		require.Error(t, err, strings.Join(c.args, " "))
		for _, w := range c.want {
			require.Contains(t, err.Error(), w)
		}
		require.NotContains(t, err.Error(), "\n")
		require.NotContains(t, log.String(), "step 1/1", "nothing runs after a bad student")
	}
	_, err = os.Stat(out)
	require.True(t, os.IsNotExist(err), "no output after an error")
}

func TestImg2VidUsageShowsTheStudent(t *testing.T) {
	var log bytes.Buffer
	err := run([]string{"-help"}, &log)
	require.ErrorIs(t, err, flag.ErrHelp)
	for _, w := range []string{
		"-lora run2/export/lora -sampler tts -steps 1",
		"-unet run2/export/unet -sampler consistency",
		"consistency 4\nsteps and tts 1 step",
		"-schedule string",
	} {
		require.Contains(t, log.String(), w)
	}
}
