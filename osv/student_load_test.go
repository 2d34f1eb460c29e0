package osv

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/lora"
	"github.com/onestepvideo/osv-go/osv/media"
	"github.com/onestepvideo/osv-go/torch"
)

// studentOptions are small, seeded generation settings on the fixture.
func studentOptions(t *testing.T) GenerateOptions {
	o := readCase(t).options()
	o.NumInferenceSteps = 2
	o.Seed = 5
	return o
}

// generateFrames runs the pipeline on the fixture's image and returns the
// frames as float32 values.
func generateFrames(t *testing.T, p *Pipeline, o GenerateOptions) []float32 {
	t.Helper()
	img, err := media.LoadImage(fixture.Path("io", "pipeline_input.png"))
	require.NoError(t, err)
	v, err := p.Generate(context.Background(), img, o)
	require.NoError(t, err)
	defer Release(v.Tensor)
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromGotorch(s, v.Tensor)
	require.NoError(t, err)
	out, err := x.Float32s()
	require.NoError(t, err)
	return out
}

func relL2(t *testing.T, got, want []float32) float64 {
	t.Helper()
	r, err := fixture.RelL2(got, want)
	require.NoError(t, err)
	return r
}

// randomLoRA attaches adapters to the pipeline's UNet with B drawn at
// random (B = 0 would leave the model unchanged and prove nothing).
func randomLoRA(t *testing.T, p *Pipeline, r int64, seed uint64) *lora.Set {
	t.Helper()
	cfg := lora.DefaultConfig(r)
	cfg.LoraAlpha = float64(2 * r)
	set, err := lora.Inject(p.UNet, cfg, seed)
	require.NoError(t, err)
	g, err := torch.NewGenerator(seed + 100)
	require.NoError(t, err)
	defer g.Close()
	for _, prm := range set.Trainable() {
		if !strings.HasSuffix(prm.Name, ".lora_B.weight") {
			continue
		}
		s := torch.NewScope()
		b, err := g.Randn(s, prm.Shape, torch.Float32, p.Device())
		require.NoError(t, err)
		nt, err := s.MulScalar(b, 0.05).To(nil, torch.Float32, p.Device())
		s.Close()
		require.NoError(t, err)
		prm.T.Free()
		prm.T = nt
	}
	return set
}

func TestWithLoRAMatchesAdaptersInMemory(t *testing.T) {
	start := torch.Live()
	o := studentOptions(t)
	p, err := LoadPipeline(fixture.Path("pipeline"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	base := generateFrames(t, p, o)
	set := randomLoRA(t, p, 4, 1)
	unmerged := generateFrames(t, p, o)
	require.Greater(t, relL2(t, unmerged, base), 1e-3, "the adapters must change the video")
	require.NoError(t, set.Merge())
	merged := generateFrames(t, p, o)
	require.LessOrEqual(t, relL2(t, merged, unmerged), 1e-4, "merging rounds the weights once")
	dir := filepath.Join(t.TempDir(), "lora")
	require.NoError(t, set.Save(dir))
	modules := set.Modules()
	require.NoError(t, set.Close())
	require.NoError(t, p.Close())
	require.Equal(t, start, torch.Live())

	for _, c := range []struct {
		name   string
		opts   []Option
		merged bool
	}{
		{"merged", []Option{WithLoRA(dir)}, true},
		{"unmerged", []Option{WithLoRAUnmerged(), WithLoRA(dir)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := LoadPipeline(fixture.Path("pipeline"), append(c.opts, WithDevice(testDevice.String()))...)
			require.NoError(t, err)
			require.NotNil(t, q.LoRA)
			require.Equal(t, c.merged, q.LoRA.Merged())
			require.Equal(t, modules, q.LoRA.Modules())
			got := generateFrames(t, q, o)
			e := relL2(t, got, unmerged)
			t.Logf("%s LoRA from %s against the adapters in memory: relative L2 error %.3g", c.name, dir, e)
			require.LessOrEqual(t, e, 1e-4)
			require.NoError(t, q.Close())
			require.Nil(t, q.LoRA)
			require.NoError(t, q.Close(), "Close twice")
			require.Equal(t, start, torch.Live(), "native tensors left by the pipeline and its LoRA")
		})
	}
}

// saveStateDict writes the UNet's parameters as one bare state_dict file.
func saveStateDict(t *testing.T, p *Pipeline, file string) {
	t.Helper()
	ts := map[string]*torch.Tensor{}
	for _, prm := range p.UNet.Params().List() {
		ts[prm.Name] = prm.T
	}
	require.NoError(t, torch.SaveFile(file, ts, map[string]string{"format": "pt"}))
}

func TestWithUNetStateDictMatchesFolder(t *testing.T) {
	start := torch.Live()
	o := studentOptions(t)
	// A student: the fixture's UNet with random adapters merged in, saved as
	// a diffusers folder and as a single state_dict file.
	p, err := LoadPipeline(fixture.Path("pipeline"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	base := generateFrames(t, p, o)
	set := randomLoRA(t, p, 4, 2)
	require.NoError(t, set.Merge())
	student := generateFrames(t, p, o)
	require.Greater(t, relL2(t, student, base), 1e-3, "the student must differ from the teacher")
	tmp := t.TempDir()
	folder, file := filepath.Join(tmp, "unet"), filepath.Join(tmp, "student.safetensors")
	require.NoError(t, p.UNet.Save(folder))
	saveStateDict(t, p, file)
	require.NoError(t, set.Close())
	// A second LoRA, to go onto the replaced UNet.
	set2 := randomLoRA(t, p, 2, 3)
	loraDir := filepath.Join(tmp, "lora")
	require.NoError(t, set2.Save(loraDir))
	require.NoError(t, set2.Close())
	require.NoError(t, p.Close())
	require.Equal(t, start, torch.Live())

	fromFolder, err := LoadPipeline(fixture.Path("pipeline"), WithUNet(folder), WithDevice(testDevice.String()))
	require.NoError(t, err)
	gotFolder := generateFrames(t, fromFolder, o)
	require.LessOrEqual(t, relL2(t, gotFolder, student), 1e-6)
	// The reference for the pair: the folder's UNet with the second set
	// loaded in memory.
	mem, err := lora.Load(fromFolder.UNet, loraDir)
	require.NoError(t, err)
	withLoRA := generateFrames(t, fromFolder, o)
	require.Greater(t, relL2(t, withLoRA, gotFolder), 1e-3)
	require.NoError(t, mem.Close())
	require.NoError(t, fromFolder.Close())

	fromFile, err := LoadPipeline(fixture.Path("pipeline"), WithUNet(file), WithDevice(testDevice.String()))
	require.NoError(t, err)
	gotFile := generateFrames(t, fromFile, o)
	e := relL2(t, gotFile, gotFolder)
	t.Logf("state_dict %s against the folder: relative L2 error %.3g", file, e)
	require.LessOrEqual(t, e, 1e-7)
	require.NoError(t, fromFile.Close())

	both, err := LoadPipeline(fixture.Path("pipeline"), WithUNet(file), WithLoRA(loraDir), WithDevice(testDevice.String()))
	require.NoError(t, err)
	got := generateFrames(t, both, o)
	e = relL2(t, got, withLoRA)
	t.Logf("state_dict with a LoRA against the same in memory: relative L2 error %.3g", e)
	require.LessOrEqual(t, e, 1e-4)
	require.NoError(t, both.Close())
	require.Equal(t, start, torch.Live())
}

func TestStudentLoadRejectsBadInput(t *testing.T) {
	tmp := t.TempDir()
	pipe := fixture.Path("pipeline")
	p, err := LoadPipeline(pipe, WithDevice(testDevice.String()))
	require.NoError(t, err)
	set := randomLoRA(t, p, 2, 4)
	good := filepath.Join(tmp, "lora")
	require.NoError(t, set.Save(good))
	require.NoError(t, set.Close())
	stateDict := filepath.Join(tmp, "student.safetensors")
	saveStateDict(t, p, stateDict)

	// A state_dict with one weight of another shape.
	ts := map[string]*torch.Tensor{}
	for _, prm := range p.UNet.Params().List() {
		ts[prm.Name] = prm.T
	}
	odd, err := torch.Full(nil, []int64{3, 3}, 0, torch.Float32, testDevice)
	require.NoError(t, err)
	ts["conv_in.weight"] = odd
	misshaped := filepath.Join(tmp, "misshaped.safetensors")
	require.NoError(t, torch.SaveFile(misshaped, ts, nil))
	odd.Free()
	require.NoError(t, p.Close())

	// Copies of the fixture's folders, each with one file edited.
	copyWith := func(src, name string, edit func(file string, b []byte) []byte) string {
		dst := filepath.Join(tmp, name)
		require.NoError(t, os.MkdirAll(dst, 0o755))
		entries, err := os.ReadDir(src)
		require.NoError(t, err)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), edit(e.Name(), b), 0o644))
		}
		return dst
	}
	editJSON := func(key string, v any) func(string, []byte) []byte {
		return func(file string, b []byte) []byte {
			if !strings.HasSuffix(file, ".json") {
				return b
			}
			var m map[string]any
			require.NoError(t, json.Unmarshal(b, &m))
			m[key] = v
			out, err := json.Marshal(m)
			require.NoError(t, err)
			return out
		}
	}
	truncate := func(name string) func(string, []byte) []byte {
		return func(file string, b []byte) []byte {
			if file == name {
				return b[:len(b)/2]
			}
			return b
		}
	}
	truncated := filepath.Join(tmp, "truncated.safetensors")
	b, err := os.ReadFile(stateDict)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(truncated, b[:len(b)-len(b)/3], 0o644))
	narrow := copyWith(fixture.Path("pipeline", "unet"), "narrow-unet", editJSON("in_channels", 4))
	noTargets := copyWith(good, "lora-no-targets", editJSON("target_modules", []string{"nothing_here"}))
	otherRank := copyWith(good, "lora-rank-3", editJSON("r", 3))
	cutLoRA := copyWith(good, "lora-truncated", truncate("adapter_model.safetensors"))
	missing := filepath.Join(tmp, "missing")
	vaeFile := fixture.Path("pipeline", "vae", "diffusion_pytorch_model.safetensors")

	for _, c := range []struct {
		name string
		opts []Option
		want []string
	}{
		{"missing UNet", []Option{WithUNet(missing)}, []string{missing, "no such file"}},
		{"empty UNet path", []Option{WithUNet("")}, []string{"WithUNet", "empty"}},
		{"VAE weights as a UNet", []Option{WithUNet(vaeFile)}, []string{vaeFile, "missing keys", "unexpected keys", "conv_in.weight"}},
		{"VAE folder as a UNet", []Option{WithUNet(fixture.Path("pipeline", "vae"))}, []string{filepath.Join(fixture.Path("pipeline", "vae"), "config.json")}},
		{"mis-shaped state_dict", []Option{WithUNet(misshaped)}, []string{misshaped, "mis-shaped", "conv_in.weight", "[3 3]"}},
		{"truncated state_dict", []Option{WithUNet(truncated)}, []string{truncated, "past the end"}},
		{"UNet folder of another layout", []Option{WithUNet(narrow)}, []string{filepath.Join(narrow, "config.json"), "in_channels 4"}},
		{"missing LoRA", []Option{WithLoRA(missing)}, []string{missing}},
		{"LoRA as a file", []Option{WithLoRA(stateDict)}, []string{stateDict, "not a folder"}},
		{"LoRA of other layers", []Option{WithLoRA(noTargets)}, []string{filepath.Join(noTargets, "adapter_config.json"), "no layer matches", "nothing_here"}},
		{"LoRA of another rank", []Option{WithLoRA(otherRank)}, []string{filepath.Join(otherRank, "adapter_model.safetensors"), "mis-shaped", "lora_A.weight"}},
		{"truncated LoRA", []Option{WithLoRA(cutLoRA)}, []string{filepath.Join(cutLoRA, "adapter_model.safetensors")}},
		{"bad LoRA on a replaced UNet", []Option{WithUNet(stateDict), WithLoRA(otherRank)}, []string{"mis-shaped", "lora_B.weight"}},
		{"bad LoRA unmerged", []Option{WithLoRAUnmerged(), WithLoRA(noTargets)}, []string{"no layer matches"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := torch.Live()
			q, err := LoadPipeline(pipe, append(c.opts, WithDevice(testDevice.String()))...)
			require.Error(t, err)
			require.Nil(t, q)
			t.Log(err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "\n")
			require.Equal(t, start, torch.Live(), "native tensors left by a failed load")
		})
	}
}
