package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image/gif"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/examples/toy/world"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// The latent map is a lossless rearrangement of the centred, scaled
// pixels: pixels → latents → pixels is the identity (to float rounding),
// and a latent channel holds one colour plane's r×r block.
func TestLatentsRoundTrip(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	wc := world.DefaultConfig()
	clip := wc.Sample(rand.New(rand.NewPCG(1, 2)))
	px, err := clipsTensor(s, wc, []world.Clip{clip}, torch.CPU)
	require.NoError(t, err)
	f, n := int64(wc.Frames), int64(wc.Size)
	z := toLatents(s, s.Reshape(px, f, 3, n, n))
	require.Equal(t, []int64{f, latentChannel, n / factor, n / factor}, z.Shape())
	back, err := framesOf(s, s.Reshape(z, 1, f, latentChannel, n/factor, n/factor))
	require.NoError(t, err)
	require.Len(t, back[0], len(clip.Pixels))
	for i, v := range clip.Pixels {
		require.InDelta(t, v, back[0][i], 1e-5, "pixel %d", i)
	}
	// Channel c·r² + i·r + j at (y, x) is colour c at (r·y + i, r·x + j).
	zs, err := z.Float32s()
	require.NoError(t, err)
	plane := n / factor * (n / factor)
	c, i, j, y, x := int64(1), int64(1), int64(0), int64(5), int64(7)
	got := zs[(c*factor*factor+i*factor+j)*plane+y*(n/factor)+x]
	want := (float64(clip.Pixels[c*n*n+(factor*y+i)*n+factor*x+j]) - pixelMean) / pixelStd
	require.InDelta(t, want, got, 1e-5)
}

// The latents' scale is the world's: its pixels' mean and deviation are
// the constants the latent map uses.
func TestLatentScale(t *testing.T) {
	wc := world.DefaultConfig()
	r := rand.New(rand.NewPCG(11, 12))
	var sum, sq float64
	var n int
	for range 500 {
		for _, v := range wc.Sample(r).Pixels {
			sum += float64(v)
			sq += float64(v) * float64(v)
			n++
		}
	}
	m := sum / float64(n)
	require.InDelta(t, pixelMean, m, 0.01)
	require.InDelta(t, pixelStd, math.Sqrt(sq/float64(n)-m*m), 0.01)
}

// The checks pass the world's own continuations and fail each way a
// generated clip goes wrong: blurred, fading, on a noisy background,
// jittering in place, turning at random, or standing still.
func TestDemoChecksRejectBadClips(t *testing.T) {
	wc := world.DefaultConfig()
	clips := heldOutClips(32)
	truth := make([][]float32, len(clips))
	for i, c := range clips {
		truth[i] = c.Pixels
	}
	rep, err := scoreDemo(wc, clips, truth)
	require.NoError(t, err)
	t.Logf("the true continuations: %s", rep)
	require.Empty(t, rep.failures())

	r := rand.New(rand.NewPCG(5, 5))
	per := 3 * wc.Size * wc.Size
	bad := map[string]func(c world.Clip) []float32{
		"blurred": func(c world.Clip) []float32 { return boxBlur(wc, c.Pixels) },
		"fading": func(c world.Clip) []float32 {
			out := slices.Clone(c.Pixels)
			for f := range wc.Frames {
				a := float32(f) / float32(wc.Frames-1)
				for i := f * per; i < (f+1)*per; i++ {
					out[i] = out[i]*(1-a) - a
				}
			}
			return out
		},
		"noisy background": func(c world.Clip) []float32 {
			out := slices.Clone(c.Pixels)
			for i, v := range out {
				out[i] = float32(math.Max(-1, math.Min(1, float64(v)+0.3*r.NormFloat64())))
			}
			return out
		},
		"jittering in place": func(c world.Clip) []float32 {
			return renderPaths(wc, c, func(i, f int, x, y float64) (float64, float64) {
				if f == 0 {
					return c.Objects[i].X, c.Objects[i].Y
				}
				return c.Objects[i].X + 3*(2*r.Float64()-1), c.Objects[i].Y + 3*(2*r.Float64()-1)
			})
		},
		"turning at random": func(c world.Clip) []float32 {
			return renderPaths(wc, c, func(i, f int, x, y float64) (float64, float64) {
				if f == 0 {
					return c.Objects[i].X, c.Objects[i].Y
				}
				a, sp := 2*math.Pi*r.Float64(), math.Hypot(c.Objects[i].VX, c.Objects[i].VY)
				return x + sp*math.Cos(a), y + sp*math.Sin(a)
			})
		},
		"standing still": func(c world.Clip) []float32 { return holdStill(wc, c.Pixels) },
	}
	want := map[string]string{
		"blurred": "crisp", "fading": "held", "noisy background": "background",
		"jittering in place": "smoothness", "turning at random": "smoothness", "standing still": "speed",
	}
	for name, f := range bad {
		px := make([][]float32, len(clips))
		for i, c := range clips {
			px[i] = f(c)
		}
		rep, err := scoreDemo(wc, clips, px)
		require.NoError(t, err)
		t.Logf("%s: %s; fails %v", name, rep, rep.failures())
		require.Contains(t, rep.failures(), want[name], name)
	}
}

// boxBlur averages each pixel with its 3×3 neighbours, per channel.
func boxBlur(wc world.Config, px []float32) []float32 {
	s := wc.Size
	out := make([]float32, len(px))
	for p := 0; p < len(px)/(s*s); p++ {
		plane := px[p*s*s : (p+1)*s*s]
		for y := range s {
			for x := range s {
				var sum float32
				var n int
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						if yy, xx := y+dy, x+dx; yy >= 0 && yy < s && xx >= 0 && xx < s {
							sum += plane[yy*s+xx]
							n++
						}
					}
				}
				out[p*s*s+y*s+x] = sum / float32(n)
			}
		}
	}
	return out
}

// renderPaths draws c's objects frame by frame at the top-left corners
// step gives (from the previous frame's), clamped inside the frame.
func renderPaths(wc world.Config, c world.Clip, step func(i, f int, x, y float64) (float64, float64)) []float32 {
	per := 3 * wc.Size * wc.Size
	out := make([]float32, wc.Frames*per)
	objs := slices.Clone(c.Objects)
	for f := range wc.Frames {
		for i := range objs {
			x, y := step(i, f, objs[i].X, objs[i].Y)
			room := float64(wc.Size - objs[i].Side)
			objs[i].X, objs[i].Y = math.Max(0, math.Min(room, x)), math.Max(0, math.Min(room, y))
			objs[i].VX, objs[i].VY = 0, 0
		}
		wc.Render(objs, 0, out[f*per:(f+1)*per])
	}
	return out
}

// runDemoChecks runs the committed demo model over n held-out first
// frames with sm and scores every generated clip.
func runDemoChecks(t *testing.T, n int, sm sampler) demoReport {
	u, err := loadStudent("teacher", "student-lora", "cpu")
	require.NoError(t, err)
	defer u.Close()
	wc := world.DefaultConfig()
	clips := heldOutClips(n)
	es := newEvalSet(wc, clips, len(clips), 5)
	px, _, err := es.generate(u, sm, clips, es.seed)
	require.NoError(t, err)
	rep, err := scoreDemo(wc, clips, px)
	require.NoError(t, err)
	t.Logf("%s over %d clips: %s", samplerLabel(sm), n, rep)
	return rep
}

// The demo's bar (democheck.go) is what the committed demo model is
// measured against; the checks it does not meet yet are listed here with
// the numbers measured on the CPU, and every other check must pass.
// Over 16 held-out clips, the distilled toy student (seed 1's OSV student
// of docs/RESULTS.md) reaches:
//
//	1 step:     held 0.81, worst frame crisp 0.087, smoothness 2.38 (true 1.41), FD 238.8 against the still video's 51.1
//	1 step+TTS: held 0.84, worst frame crisp 0.371, smoothness 2.60 (true 1.41), FD 243.9 against 51.1
//
// so "held", "crisp", "smoothness" and "FD" stay unmet (the bar asks 0.9,
// 0.9, at most 0.75 above the true smoothness, and 0.2× the still video's
// FD); the teacher alone at 25 steps holds 0.83 and is 0.756 crisp on
// these clips. Below the bar, held must stay at 0.75 or above: the
// adapters the demo had before these held 0.67, and a student whose
// objects fade (held 0.00 in TestDemoChecksRejectBadClips) fails too.
var demoModelUnmet = []string{"held", "crisp", "smoothness", "FD"}

const demoModelMinHeld = 0.75

// The committed demo model moves the first frame's objects at the world's
// speeds along smooth paths, where the conditioning put them, on a dark
// background, in one step and with TTS, on the CPU; its held share, its
// crispness and its FD are measured against the bar and reported.
func TestDemoModelMoves(t *testing.T) {
	for _, sm := range []sampler{studentSteps(1), studentTTS()} {
		rep := runDemoChecks(t, 16, sm)
		t.Logf("%s: %s", samplerLabel(sm), barVerdict(rep.failures()))
		require.Subset(t, demoModelUnmet, rep.failures(), "%s: %s", samplerLabel(sm), rep)
		require.GreaterOrEqual(t, rep.held, demoModelMinHeld, "%s: %s", samplerLabel(sm), rep)
	}
}

// The GIF make demo writes, measured (CPU): every object kept, centres off
// by 0.56 px, background 0.0068, speed 2.60, but its worst frame's
// crispness is 0.770 against the bar's 0.9.
var demoGIFUnmet = []string{"crisp"}

// The demo command writes a GIF whose frames, decoded, hold every object
// of the first frame where the conditioning put it, moving, on a dark
// background; it reports the bar's checks on that clip.
func TestDemoCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "demo.gif")
	var log testWriter
	require.NoError(t, runDemo([]string{"-model", "teacher", "-lora", "student-lora", "-out", out}, &log))
	require.Contains(t, string(log), "tracked speed")
	require.Contains(t, string(log), "the demo's bar")
	require.Error(t, runDemo([]string{"-model", t.TempDir()}, &log))
	require.ErrorContains(t, runDemo([]string{"-sampler", "3"}, &log), "-sampler")
	require.ErrorContains(t, runDemo([]string{"-sampler", "1", "-travel", "2"}, &log), "-travel 2")
	require.ErrorContains(t, runDemo([]string{"-sampler", "teacher", "-teacher-steps", "0"}, &log), "-teacher-steps 0")
	require.ErrorContains(t, runDemo([]string{"-sampler", "teacher", "-guidance", "0.5"}, &log), "-guidance 0.5")
	require.ErrorContains(t, runDemo([]string{"-travel", "80"}, &log), "-travel 80")

	wc := world.DefaultConfig()
	clip := wc.Sample(rand.New(rand.NewPCG(3, 0)))
	px := readGIFClip(t, out, wc)
	ch := checkClip(wc, clip, px)
	t.Logf("the GIF: %s; %s", ch, barVerdict(ch.failures(wc)))
	require.Subset(t, demoGIFUnmet, ch.failures(wc), "the GIF: %s", ch)
	require.Equal(t, 1.0, ch.held, "every object of the first frame in every frame of the GIF")
}

// readGIFClip decodes the demo's GIF (each pixel a 3×3 block) back into a
// clip's pixels in [−1, 1].
func readGIFClip(t *testing.T, path string, wc world.Config) []float32 {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	g, err := gif.DecodeAll(f)
	require.NoError(t, err)
	require.Len(t, g.Image, wc.Frames)
	const scale = 3
	plane := wc.Size * wc.Size
	px := make([]float32, 0, wc.Frames*3*plane)
	for _, im := range g.Image {
		require.Equal(t, wc.Size*scale, im.Bounds().Dx())
		frame := make([]float32, 3*plane)
		for y := range wc.Size {
			for x := range wc.Size {
				r, gr, b, _ := im.At(x*scale+1, y*scale+1).RGBA()
				for c, v := range []uint32{r, gr, b} {
					frame[c*plane+y*wc.Size+x] = float32(v)/65535*2 - 1
				}
			}
		}
		px = append(px, frame...)
	}
	return px
}

type testWriter []byte

func (w *testWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }

// Every phase of the experiment runs, in a shrunken world with a few
// steps each, writes its results and the report, and resumes: a second
// run keeps every finished job, and a job whose file is gone runs again.
func TestExperimentSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	o := smallExperiment(t)
	o.Seeds = []uint64{1, 2}
	var log, out testWriter
	e, done, err := o.setup(&log, "log.txt")
	require.NoError(t, err)
	defer done()
	ctx := t.Context()
	require.ErrorContains(t, o.seedPhase(ctx, e, 1, nil), "run the teacher phase first")
	require.NoError(t, o.teacherPhase(ctx, e))
	require.NoError(t, o.seedPhase(ctx, e, 1, nil))
	require.NoError(t, o.seedPhase(ctx, e, 2, []string{"stage1", "osv"}))
	require.ErrorContains(t, o.seedPhase(ctx, e, 3, []string{"osv"}), "needs the stage1 job of seed 3 first")
	require.NoError(t, o.tablePhase(&out, &log))
	for _, f := range []string{"RESULTS.md", "ground-truth.gif", "teacher-25-steps.gif", "osv-1-step.gif", "osv-1-step-tts.gif"} {
		_, err := os.Stat(filepath.Join(o.Out, f))
		require.NoError(t, err, f)
	}
	for _, f := range []string{"log.txt", "teacher/config.json", "student-lora/adapter_config.json", "seed-1/k1.json", "seed-2/osv.json", "seed-1/adv-0.2-lora/adapter_model.safetensors", "seed-2/osv-lora/adapter_config.json"} {
		_, err := os.Stat(filepath.Join(o.Work, f))
		require.NoError(t, err, f)
	}
	report, err := os.ReadFile(filepath.Join(o.Out, "RESULTS.md"))
	require.NoError(t, err)
	require.Contains(t, string(report), "Smoke-test settings")
	require.Contains(t, string(report), "| "+labelPixel+", 1 step + TTS | 2 | 1 |")
	require.Regexp(t, `\| OSV, 1 step \| 1 \| 2 \| [0-9.]+ ± [0-9.]+ \|`, string(report), "a row over two seeds gives mean ± sd")
	require.NotContains(t, string(report), "not measured")

	// Resuming: nothing runs again, until a job's file is removed.
	log = nil
	require.NoError(t, o.teacherPhase(ctx, e))
	require.NoError(t, o.seedPhase(ctx, e, 1, nil))
	require.Contains(t, string(log), "teacher.json exists, kept")
	require.Equal(t, len(o.jobs(1)), strings.Count(string(log), "exists, kept")-1)
	require.NoError(t, os.Remove(jobFile(o.Work, 1, "no-adv")))
	log = nil
	require.NoError(t, o.seedPhase(ctx, e, 1, nil))
	require.Contains(t, string(log), "seed 1 no-adv: "+labelNoAdv)
	require.Equal(t, len(o.jobs(1))-1, strings.Count(string(log), "exists, kept"))

	// The demo runs on what the experiment wrote.
	gifPath := filepath.Join(t.TempDir(), "demo.gif")
	require.NoError(t, runDemo([]string{"-model", filepath.Join(o.Work, "teacher"), "-lora", filepath.Join(o.Work, "student-lora"), "-out", gifPath, "-sampler", "1"}, &log))
	require.NoError(t, runDemo([]string{"-model", filepath.Join(o.Work, "teacher"), "-lora", jobAdapters(o.Work, 2, "osv"), "-out", gifPath, "-sampler", "1"}, &log))
	log = nil // the teacher's sampler takes no adapters
	require.NoError(t, runDemo([]string{"-model", filepath.Join(o.Work, "teacher"), "-lora", filepath.Join(o.Work, "no-such-adapters"), "-out", gifPath, "-sampler", "teacher"}, &log))
	require.Contains(t, string(log), "teacher (50 evaluations)")
}

// The teacher trains over several commands: one cut short by its budget
// keeps its weights and progress, the next continues from them, and the
// last one finishes and evaluates it. The resumed teacher differs from
// one trained in one go (fresh optimiser moments, its own data), but takes
// the same number of steps.
func TestTeacherResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	o := smallExperiment(t)
	o.TeacherSteps, o.TeacherBudget = 3, time.Nanosecond // one step a command
	o.TeacherEMA = 0.5                                   // the average is kept across commands too
	var log testWriter
	e, done, err := o.setup(&log, "log.txt")
	require.NoError(t, err)
	defer done()
	var firstEnded time.Time // the teacher's run is dated by its first command
	for i := 1; i < 3; i++ {
		require.ErrorIs(t, o.teacherPhase(t.Context(), e), errTeacherUnfinished, "command %d", i)
		require.Contains(t, string(log), fmt.Sprintf("teacher: %d of 3 steps", i))
		if i == 1 {
			firstEnded = time.Now()
		}
	}
	require.Contains(t, string(log), "teacher: resuming at step 1 of 3")
	other := o
	other.TeacherBatch++
	require.ErrorContains(t, other.teacherPhase(t.Context(), e), "trained at batch")
	other = o
	other.TeacherEMA = 0
	require.ErrorContains(t, other.teacherPhase(t.Context(), e), "trained with -teacher-ema 0.5, not 0")
	require.NoError(t, o.teacherPhase(t.Context(), e))
	r, ok, err := readRun(filepath.Join(o.Work, "teacher.json"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 3, r.Stages[0].Steps)
	require.Positive(t, r.Loss)
	require.True(t, r.Started.Before(firstEnded), "the run started %v, with its first command, which ended %v", r.Started, firstEnded)
	var names []string
	for _, row := range r.Rows {
		names = append(names, row.Name)
	}
	require.Contains(t, names, "teacher's last weights (not averaged), 25 steps (guidance 1→2)")
	// The teacher kept is the average, not the last weights.
	avg, err := unet.Load(o.teacherDir())
	require.NoError(t, err)
	defer avg.Close()
	last, err := unet.Load(o.lastTeacherDir())
	require.NoError(t, err)
	defer last.Close()
	require.Positive(t, maxParamDiff(t, avg, last))
}

// maxParamDiff is the largest absolute difference between two models'
// weights of the same names.
func maxParamDiff(t *testing.T, a, b *unet.Model) float64 {
	t.Helper()
	pb := b.Params()
	var worst float64
	for _, p := range a.Params().List() {
		q, ok := pb.Get(p.Name)
		require.True(t, ok, p.Name)
		x, err := p.T.Float32s()
		require.NoError(t, err)
		y, err := q.T.Float32s()
		require.NoError(t, err)
		for i := range x {
			worst = max(worst, math.Abs(float64(x[i]-y[i])))
		}
	}
	return worst
}

// Under -autocast the teacher's step computes its forward pass in
// bfloat16 from the same float32 weights: on the same data and noise its
// loss differs from the float32 step's by bfloat16's rounding, not more,
// and the weights it trains stay float32.
func TestTeacherAutocast(t *testing.T) {
	wc := smallWorld
	var losses [2]float64
	for i, on := range []bool{false, true} {
		u, err := unet.New(teacherUNet(wc, teacherBlocks), unet.WithSeed(3))
		require.NoError(t, err)
		res, err := trainTeacher(t.Context(), u, wc, teacherOptions{Steps: 1, Batch: 2, LR: 1e-3, PStd: 1, DropCond: 0.1, Seed: 1, Autocast: on}, io.Discard)
		require.NoError(t, err)
		losses[i] = res.Loss
		for _, p := range u.Params().List() {
			require.Equal(t, torch.Float32, p.T.DType(), p.Name)
		}
		u.Close()
	}
	t.Logf("loss: float32 %.6f, bfloat16 autocast %.6f", losses[0], losses[1])
	require.NotEqual(t, losses[0], losses[1], "autocast changed the arithmetic")
	require.InEpsilon(t, losses[0], losses[1], 0.05)
}

// The teacher's moving average after one step is decay·start + (1 −
// decay)·weights, for every parameter.
func TestTeacherEMA(t *testing.T) {
	wc := smallWorld
	u, err := unet.New(teacherUNet(wc, teacherBlocks), unet.WithSeed(3))
	require.NoError(t, err)
	defer u.Close()
	ema, err := unet.New(teacherUNet(wc, teacherBlocks), unet.WithSeed(3))
	require.NoError(t, err)
	defer ema.Close()
	start, err := unet.New(teacherUNet(wc, teacherBlocks), unet.WithSeed(3))
	require.NoError(t, err)
	defer start.Close()
	const decay = 0.75
	_, err = trainTeacher(t.Context(), u, wc, teacherOptions{Steps: 1, Batch: 2, LR: 1e-2, PStd: 1, DropCond: 0.1, Seed: 1,
		EMA: paramList(ema), EMADecay: decay}, io.Discard)
	require.NoError(t, err)
	require.Positive(t, maxParamDiff(t, u, start), "the step moved the weights")
	pu, ps := u.Params(), start.Params()
	for _, p := range ema.Params().List() {
		w, _ := pu.Get(p.Name)
		w0, _ := ps.Get(p.Name)
		got, err := p.T.Float32s()
		require.NoError(t, err)
		a, err := w.T.Float32s()
		require.NoError(t, err)
		b, err := w0.T.Float32s()
		require.NoError(t, err)
		for i := range got {
			want := decay*b[i] + (1-decay)*a[i]
			require.InDelta(t, want, got[i], 1e-6, "%s[%d]", p.Name, i)
		}
	}
}

// -teacher-init starts the teacher from a trained one: the run says so,
// a UNet of another shape is refused by name, and one of half the widths
// is widened.
func TestTeacherInit(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	first := smallExperiment(t)
	first.TeacherSteps = 1
	first.TeacherBlocks = []int64{32, 64} // -teacher-blocks shapes a teacher from random weights
	var log testWriter
	e := withTeacher(t, &first, &log)
	trained, err := unet.Load(first.teacherDir())
	require.NoError(t, err)
	require.Equal(t, []int64{32, 64}, trained.Config.BlockOutChannels)
	trained.Close()

	next := first
	next.Work, next.TeacherInit = t.TempDir(), first.teacherDir()
	next.GuidanceRows = []float64{3} // -teacher-guidance-rows: a row of its own
	require.NoError(t, next.teacherPhase(t.Context(), e))
	r, ok, err := readRun(filepath.Join(next.Work, "teacher.json"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Contains(t, r.Stages[0].Name, "continued from "+first.teacherDir())
	var names []string
	for _, row := range r.Rows {
		names = append(names, row.Name)
	}
	require.Contains(t, names, "teacher, 25 steps (guidance 1→3)")
	require.Contains(t, names, "teacher, 25 steps (guidance 1→2)")

	// -teacher-steps 0: the init as it is, which the report says instead of
	// naming a data seed of a training that did not happen here.
	asIs := next
	asIs.Work, asIs.TeacherSteps, asIs.GuidanceRows = t.TempDir(), 0, nil
	require.NoError(t, asIs.teacherPhase(t.Context(), e))
	res, err := asIs.collect()
	require.NoError(t, err)
	report := asIs.report(res)
	require.Contains(t, report, "the teacher, "+first.teacherDir()+" as it is, is shared")
	require.Contains(t, report, "the weights in "+first.teacherDir()+" as they are, not trained further here")
	require.NotContains(t, report, "data seed was")

	other := next
	other.Work = t.TempDir()
	other.World.Size = 64
	require.ErrorContains(t, other.teacherPhase(t.Context(), e), "-teacher-init "+first.teacherDir())
	other = next
	other.Work, other.TeacherBlocks = t.TempDir(), []int64{64, 64}
	require.ErrorContains(t, other.teacherPhase(t.Context(), e), "blocks [32 64]")
	// Twice the init's widths: widened (TestWidenKeepsTheFunction), then
	// trained.
	wider := next
	wider.Work, wider.TeacherBlocks = t.TempDir(), []int64{64, 128}
	require.NoError(t, wider.teacherPhase(t.Context(), e))
	w, err := unet.Load(wider.teacherDir())
	require.NoError(t, err)
	require.Equal(t, []int64{64, 128}, w.Config.BlockOutChannels)
	w.Close()
}

// The command line names its phases and jobs.
func TestCommandLine(t *testing.T) {
	var log testWriter
	require.ErrorContains(t, run(t.Context(), []string{"train"}, &log, &log), `unknown command "train"`)
	require.ErrorContains(t, run(t.Context(), []string{"student", "-jobs", "osv,nope"}, &log, &log), `unknown job "nope"`)
	require.ErrorContains(t, run(t.Context(), []string{"student", "-seeds", "1,x"}, &log, &log), "-seeds")
	require.ErrorContains(t, run(t.Context(), []string{"teacher", "-teacher-blocks", "64,48"}, &log, &log), "-teacher-blocks")
	require.ErrorContains(t, run(t.Context(), []string{"teacher", "-max-guidance", "0.5"}, &log, &log), "-max-guidance 0.5")
	require.ErrorContains(t, run(t.Context(), []string{"teacher", "-teacher-guidance-rows", "3,0.5"}, &log, &log), `-teacher-guidance-rows "3,0.5"`)
	require.ErrorContains(t, run(t.Context(), []string{"teacher", "-teacher-guidance-rows", "3,2"}, &log, &log), "2 is -max-guidance's")
	require.ErrorContains(t, run(t.Context(), []string{"teacher", "-teacher-guidance-rows", "3,3"}, &log, &log), "given twice")
	require.ErrorContains(t, run(t.Context(), []string{"student", "-lambda-adv", "0"}, &log, &log), "-lambda-adv 0")
	require.ErrorContains(t, run(t.Context(), []string{"student", "-lambda-adv", "NaN"}, &log, &log), "-lambda-adv NaN")
	require.ErrorContains(t, run(t.Context(), []string{"student", "-lambda-adv", "-0.1"}, &log, &log), "-lambda-adv -0.1")
	require.ErrorContains(t, run(t.Context(), []string{"student", "-watch", "-1"}, &log, &log), "-watch -1")
	require.ErrorContains(t, run(t.Context(), []string{"student", "-watch", "50", "-watch-clips", "1"}, &log, &log), "-watch-clips 1")
	o, _, err := parseExperiment("teacher", []string{"-max-guidance", "3", "-teacher-guidance-rows", "2, 4.5"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 3.0, o.MaxGuidance)
	require.Equal(t, []float64{2, 4.5}, o.GuidanceRows)
	require.Equal(t, []string{"stage1", "osv", "k1", "no-stage1", "no-adv", "real-data", "real-low", "pixel", "adv-0.1", "adv-0.2", "adv-0.3", "disc-lr-0.001"}, jobNames())
	o, _, err = parseExperiment("student", []string{"-lambda-adv", "0.3"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 0.3, o.lambdaAdv())
	require.Equal(t, 0.1, (&experiment{}).lambdaAdv(), "a run file from before the setting trained with the paper's weight")
	for _, bad := range []string{"1", "-0.5", "NaN", "1.5"} {
		require.ErrorContains(t, run(t.Context(), []string{"student", "-adapter-ema", bad}, &log, &log), "-adapter-ema "+bad)
	}
	o, _, err = parseExperiment("student", []string{"-adapter-ema", "0.99"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 0.99, o.AdapterEMA)
}

// A run file keeps the settings its run used, and the report reads them
// back; an older file without them gets them from its recorded command.
func TestRunSettings(t *testing.T) {
	o, err := settingsOf("toy student -device cuda -work W -seed 2 -stage2-steps 600 -teacher-lr 2e-4")
	require.NoError(t, err)
	require.Equal(t, 600, o.Stage2Steps)
	require.Equal(t, "cuda", o.Device)
	require.Equal(t, 2e-4, o.TeacherLR)
	_, err = settingsOf("toy student -no-such-flag")
	require.ErrorContains(t, err, "no-such-flag")

	e := defaultExperiment()
	e.Stage1Steps, e.Command = 7, "toy student -stage1-steps 9"
	path := filepath.Join(t.TempDir(), "run.json")
	require.NoError(t, writeRun(path, runFile{Job: "osv", Command: e.Command, Settings: e.record()}))
	r, ok, err := readRun(path)
	require.NoError(t, err)
	require.True(t, ok)
	got, ok := r.settings()
	require.True(t, ok)
	require.Equal(t, 7, got.Stage1Steps, "the recorded settings, not the command's")
	r.Settings = nil
	got, ok = r.settings()
	require.True(t, ok)
	require.Equal(t, 9, got.Stage1Steps)
	_, ok = runFile{}.settings()
	require.False(t, ok)
}

// smallWorld is the tests' shrunken world: a few small squares in 32×32,
// two frames.
var smallWorld = world.Config{Size: 32, Frames: 2, MinObjects: 1, MaxObjects: 2, MinSide: 6, MaxSide: 8, MinSpeed: 1, MaxSpeed: 2}

// withTeacher sets o up (its log in log, closed when the test ends) and
// runs its teacher phase.
func withTeacher(t *testing.T, o *experiment, log *testWriter) *env {
	t.Helper()
	e, done, err := o.setup(log, "log.txt")
	require.NoError(t, err)
	t.Cleanup(done)
	require.NoError(t, o.teacherPhase(t.Context(), e))
	return e
}

// sharedTeachers holds, per teacher settings, the work folder of a
// teacher phase run once for every test of the binary that asks for it.
var sharedTeachers sync.Map // the settings' JSON → *sharedTeacher

type sharedTeacher struct {
	once sync.Once
	work string
	err  error
}

// withSharedTeacher is withTeacher for tests that only need a teacher to
// distil from: the teacher phase runs once per set of settings, and o's
// work folder gets a copy of its teacher and its run file.
func withSharedTeacher(t *testing.T, o *experiment, log *testWriter) *env {
	t.Helper()
	e, done, err := o.setup(log, "log.txt")
	require.NoError(t, err)
	t.Cleanup(done)
	k := *o // the settings the teacher phase reads
	k.Work, k.Out, k.Command = "", "", ""
	k.Stage1Steps, k.Stage2Steps, k.Batch, k.Rank, k.LR, k.DiscLR, k.Watch, k.WatchClips = 0, 0, 0, 0, 0, 0, 0, 0
	k.Stage2Graphs, k.Stage2Record, k.Stage1Record = false, false, false
	k.Seeds = k.Seeds[:1]
	key, err := json.Marshal(k)
	require.NoError(t, err)
	v, _ := sharedTeachers.LoadOrStore(string(key), &sharedTeacher{})
	st := v.(*sharedTeacher)
	st.once.Do(func() {
		if st.work, st.err = os.MkdirTemp("", "toy-teacher-"); st.err != nil {
			return
		}
		c := *o
		c.Work = st.work
		st.err = c.teacherPhase(context.Background(), e)
	})
	require.NoError(t, st.err)
	require.NoError(t, copyFolder(filepath.Join(st.work, "teacher"), o.teacherDir()))
	b, err := os.ReadFile(filepath.Join(st.work, "teacher.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(o.Work, "teacher.json"), b, 0o644))
	return e
}

func TestMain(m *testing.M) {
	code := m.Run()
	sharedTeachers.Range(func(_, v any) bool {
		if w := v.(*sharedTeacher).work; w != "" {
			os.RemoveAll(w)
		}
		return true
	})
	os.Exit(code)
}

// smallExperiment is the quick settings over smallWorld on the CPU, with
// work and output folders of the test's own.
func smallExperiment(t *testing.T) experiment {
	o := defaultExperiment().quick()
	o.World = smallWorld
	o.Work, o.Out, o.Device, o.Command = t.TempDir(), t.TempDir(), "cpu", "toy (test)"
	return o
}

func TestLargestTerms(t *testing.T) {
	r := demoReport{fdTerms: make([]float64, len(world.FeatureNames))}
	r.fdTerms[9], r.fdTerms[7], r.fdTerms[0] = 340.31, 45, 3
	require.Equal(t, "persistence 340.3, speed_std 45.0, objects 3.0", r.largestTerms(3))
	require.Equal(t, "persistence 340.3", r.largestTerms(1))
}

// The table's last column averages each seed's terms and names the two
// largest; rows without terms (older files) leave it empty.
func TestAggRowLargestTerms(t *testing.T) {
	a := &aggRow{}
	require.Equal(t, "", a.largestTerms(2))
	n := len(world.FeatureNames)
	t1, t2 := make([]float64, n), make([]float64, n)
	t1[9], t1[8], t1[6] = 300, 10, 40
	t2[9], t2[8], t2[6] = 100, 50, 0
	a.terms = [][]float64{t1, t2}
	require.Equal(t, "persistence 200.0, smoothness 30.0", a.largestTerms(2))
}

// Objects blanked out of the last three frames are counted missing in each
// of them, and in no other frame.
func TestCheckClipMissing(t *testing.T) {
	wc := world.DefaultConfig()
	clips := heldOutClips(4)
	px := make([][]float32, len(clips))
	plane := 3 * wc.Size * wc.Size
	for i, c := range clips {
		px[i] = slices.Clone(c.Pixels)
		for j := 5 * plane; j < len(px[i]); j++ {
			px[i][j] = -1
		}
	}
	rep, err := scoreDemo(wc, clips, px)
	require.NoError(t, err)
	require.Positive(t, rep.starts)
	n := rep.starts
	require.Equal(t, []int{0, 0, 0, 0, 0, n, n, n}, rep.missing)
	require.Equal(t, fmt.Sprintf("of the %d objects found in the first frame, missing in frames 2–8: 0, 0, 0, 0, %d, %d, %d", n, n, n, n), rep.lostByFrame())
	truth, err := scoreDemo(wc, clips, func() [][]float32 {
		out := make([][]float32, len(clips))
		for i, c := range clips {
			out[i] = c.Pixels
		}
		return out
	}())
	require.NoError(t, err)
	require.Equal(t, make([]int, wc.Frames), truth.missing, "the true clips lose nothing")
}

// A hypothesis reads the row of the validation's checkpoint where the
// table has one, the longest job label deciding which job a row is of,
// and the last step's row otherwise.
func TestClaimsReadTheChosenCheckpoint(t *testing.T) {
	res := &results{byName: map[string]*aggRow{}}
	add := func(name string) { res.byName[name] = &aggRow{Name: name} }
	tts := ", 1 step + TTS"
	for _, n := range []string{labelOSV + tts, bestLabel(labelOSV) + tts, labelStage1 + tts, labelRealData + tts, bestLabel(labelRealData) + tts, labelK1 + tts} {
		add(n)
	}
	require.Equal(t, bestLabel(labelOSV)+tts, res.chosen(labelOSV+tts).Name)
	require.Equal(t, labelStage1+tts, res.chosen(labelStage1+tts).Name, "stage 1 has no validation")
	require.Equal(t, bestLabel(labelRealData)+tts, res.chosen(labelRealData+tts).Name, "OSV is a prefix of this label")
	require.Equal(t, labelK1+tts, res.chosen(labelK1+tts).Name)
	require.Nil(t, res.chosen(labelNoAdv+tts))
	require.Equal(t, " †", chosenMark(res.chosen(labelOSV+tts)))
	require.Equal(t, "", chosenMark(res.chosen(labelK1+tts)))
}
