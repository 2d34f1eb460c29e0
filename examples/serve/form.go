package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig of uploads
	_ "image/png"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/media"
)

// params are one request's settings, checked.
type params struct {
	Steps, Frames, Width, Height int
	MotionBucket, FPS            int
	Seed                         uint64
	Format                       string // gif or mp4
	Async                        bool
}

// options are the pipeline's options for p.
func (p params) options(sampler osv.Sampler) osv.GenerateOptions {
	return osv.GenerateOptions{
		Sampler: sampler, NumInferenceSteps: p.Steps, Seed: p.Seed, NumFrames: p.Frames,
		Width: p.Width, Height: p.Height, MotionBucketID: p.MotionBucket, FPS: p.FPS,
	}
}

// filename is the name a downloaded video gets.
func (p params) filename() string {
	return fmt.Sprintf("osv-%dx%d-%dframes-seed%d.%s", p.Width, p.Height, p.Frames, p.Seed, p.Format)
}

// fields are the form's fields besides image, in the order the errors list them.
var fields = []string{"steps", "seed", "frames", "width", "height", "motion_bucket", "fps", "format", "async"}

// maxField bounds a field's value; every valid value is far shorter.
const maxField = 64

// maxImagePixels bounds the pictures decoded (a 48-megapixel phone photo
// fits); a small file may claim a huge picture, so this is checked on the
// header before anything is decoded.
const maxImagePixels = 50_000_000

// form is a read request: its settings and its picture, saved in dir.
type form struct {
	p     params
	dir   string // removed by the caller
	path  string // the picture's file in dir
	name  string // the picture's name as uploaded
	kind  string // PNG or JPEG
	w, h  int    // its size, from the header
	bytes int64
}

// readForm reads the multipart body, saving the picture to a file and
// checking every field, the picture's header included. It answers 413 for
// a body over the limit, 415 for a body that is not a multipart form and
// 400 for anything wrong in it.
func (s *server) readForm(w http.ResponseWriter, r *http.Request) (*form, *apiError) {
	limit := s.cfg.maxUpload
	tooLarge := &apiError{status: http.StatusRequestEntityTooLarge,
		msg: fmt.Sprintf("the upload is larger than the limit of %d MiB (-max-upload-mb)", limit>>20)}
	if r.ContentLength > limit {
		tooLarge.msg = fmt.Sprintf("the upload of %.1f MiB is larger than the limit of %d MiB (-max-upload-mb)", float64(r.ContentLength)/(1<<20), limit>>20)
		return nil, tooLarge
	}
	ct := r.Header.Get("Content-Type")
	mt, mp, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" || mp["boundary"] == "" {
		if ct == "" {
			ct = "none"
		}
		return nil, &apiError{status: http.StatusUnsupportedMediaType,
			msg: fmt.Sprintf("Content-Type %s: send a multipart/form-data body with the picture in the field \"image\"", ct)}
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badRequest("reading the form: %v", err)
	}
	readErr := func(what string, err error) *apiError {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return tooLarge
		}
		return badRequest("reading the form's %s: %v", what, err)
	}
	f := &form{}
	raw := map[string]string{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return f, readErr("parts", err)
		}
		name := part.FormName()
		switch {
		case name == "image":
			if f.path != "" {
				return f, badRequest("the form has more than one image; send one picture")
			}
			if f.dir == "" {
				if f.dir, err = os.MkdirTemp("", "osv-serve-upload-"); err != nil {
					return f, &apiError{status: http.StatusInternalServerError, msg: "saving the upload: " + err.Error()}
				}
			}
			f.name = part.FileName()
			if f.name == "" {
				f.name = "image"
			}
			f.path = filepath.Join(f.dir, "upload")
			out, err := os.Create(f.path)
			if err != nil {
				return f, &apiError{status: http.StatusInternalServerError, msg: "saving the upload: " + err.Error()}
			}
			f.bytes, err = io.Copy(out, part)
			if cerr := out.Close(); err == nil && cerr != nil {
				return f, &apiError{status: http.StatusInternalServerError, msg: "saving the upload: " + cerr.Error()}
			}
			if err != nil {
				return f, readErr("image", err)
			}
		case isField(name):
			if _, dup := raw[name]; dup {
				return f, badRequest("field %s is given twice", name)
			}
			b, err := io.ReadAll(io.LimitReader(part, maxField+1))
			if err != nil {
				return f, readErr(name, err)
			}
			if len(b) > maxField {
				return f, badRequest("field %s is longer than %d bytes", name, maxField)
			}
			raw[name] = strings.TrimSpace(string(b))
		case name == "":
			return f, badRequest("the form has a part without a name")
		default:
			return f, badRequest("unknown field %q; the fields are image, %s", name, strings.Join(fields, ", "))
		}
		part.Close()
	}
	if f.path == "" {
		return f, badRequest("no image: send the picture as the form's file field \"image\"")
	}
	var e *apiError
	if f.p, e = s.parseParams(raw); e != nil {
		return f, e
	}
	return f, s.checkImage(f)
}

func isField(name string) bool {
	for _, f := range fields {
		if f == name {
			return true
		}
	}
	return false
}

// parseParams checks the fields against the service's limits; a field
// left out or empty takes the service's default.
func (s *server) parseParams(raw map[string]string) (params, *apiError) {
	c := s.cfg
	p := c.defaults
	var e *apiError
	integer := func(name string, v *int, lo, hi int, why string) {
		str, ok := raw[name]
		if e != nil || !ok || str == "" {
			return
		}
		n, err := strconv.Atoi(str)
		if err != nil {
			e = badRequest("%s %q: not an integer", name, str)
			return
		}
		if n < lo || n > hi {
			e = badRequest("%s %d: want %d to %d%s", name, n, lo, hi, why)
			return
		}
		*v = n
	}
	integer("steps", &p.Steps, 1, c.maxSteps, " (-max-steps)")
	integer("frames", &p.Frames, 1, c.maxFrames, " (-max-frames)")
	big := c.maxPixels / c.multiple
	integer("width", &p.Width, c.multiple, big, "")
	integer("height", &p.Height, c.multiple, big, "")
	integer("motion_bucket", &p.MotionBucket, 0, 255, "")
	integer("fps", &p.FPS, 1, 60, "")
	if e != nil {
		return p, e
	}
	if str := raw["seed"]; str != "" {
		n, err := strconv.ParseUint(str, 10, 64)
		if err != nil {
			return p, badRequest("seed %q: want an integer from 0 to %d", str, uint64(1<<64-1))
		}
		p.Seed = n
	}
	for _, d := range []struct {
		name string
		v    int
	}{{"width", p.Width}, {"height", p.Height}} {
		if d.v%c.multiple != 0 {
			return p, badRequest("%s %d: want a multiple of %d (the VAE's 8 times the UNet's downsampling)", d.name, d.v, c.multiple)
		}
	}
	if p.Width*p.Height > c.maxPixels {
		return p, badRequest("size %d×%d: %d pixels, more than the limit of %d (-max-pixels)", p.Width, p.Height, p.Width*p.Height, c.maxPixels)
	}
	if err := checkSteps(c.sampler, p.Steps); err != nil {
		return p, badRequest("steps %d: %v", p.Steps, err)
	}
	switch f := raw["format"]; f {
	case "":
	case "gif":
		p.Format = f
	case "mp4":
		if !c.mp4 {
			return p, badRequest("format mp4: the server has no ffmpeg program to write MP4; ask for format=gif")
		}
		p.Format = f
	default:
		return p, badRequest("format %q: want gif or mp4", f)
	}
	if str := raw["async"]; str != "" {
		b, err := strconv.ParseBool(str)
		if err != nil {
			return p, badRequest("async %q: want 1 or 0 (true or false)", str)
		}
		p.Async = b
	}
	return p, nil
}

// checkSteps is the sampler's own limit on its step count.
func checkSteps(sampler osv.Sampler, n int) error {
	switch sm := sampler.(type) {
	case osv.TTSSampler:
		_, _, err := sm.Levels(n)
		return err
	case osv.ConsistencySampler:
		_, err := sm.Schedule.Sigmas(n)
		return err
	}
	return nil
}

var (
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
	jpegMagic = []byte{0xff, 0xd8, 0xff}
)

// checkImage reads the picture's header: it must be a PNG or JPEG image
// of at most maxImagePixels.
func (s *server) checkImage(f *form) *apiError {
	if f.bytes == 0 {
		return badRequest("image %q: the file is empty", f.name)
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return &apiError{status: http.StatusInternalServerError, msg: "reading the upload: " + err.Error()}
	}
	defer fh.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(fh, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, pngMagic):
		f.kind = "PNG"
	case bytes.HasPrefix(head, jpegMagic):
		f.kind = "JPEG"
	default:
		return badRequest("image %q: not a PNG or JPEG picture (its content looks like %s)", f.name, http.DetectContentType(head))
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return &apiError{status: http.StatusInternalServerError, msg: "reading the upload: " + err.Error()}
	}
	cfg, _, err := image.DecodeConfig(fh)
	if err != nil {
		return badRequest("image %q: corrupt or truncated %s: %v", f.name, f.kind, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return badRequest("image %q: %s of zero size (%d×%d)", f.name, f.kind, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxImagePixels {
		return badRequest("image %q: %s of %d×%d pixels, more than the limit of %d megapixels", f.name, f.kind, cfg.Width, cfg.Height, maxImagePixels/1_000_000)
	}
	f.w, f.h = cfg.Width, cfg.Height
	return nil
}

// decode reads the whole picture (turned upright as its EXIF orientation
// says) and fits it to the video's size, so that the queue holds small
// pictures only. At most a few uploads are decoded at once.
func (s *server) decode(ctx context.Context, f *form) (image.Image, *apiError) {
	select {
	case s.decoding <- struct{}{}:
		defer func() { <-s.decoding }()
	case <-ctx.Done():
		return nil, &apiError{status: statusClientGone, msg: "cancelled: the client disconnected"}
	}
	img, err := media.LoadImage(f.path)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), f.path, strconv.Quote(f.name))
		return nil, badRequest("image %s", strings.TrimPrefix(msg, "media: "))
	}
	return media.Fit(img, f.p.Width, f.p.Height, media.FitCrop), nil
}
