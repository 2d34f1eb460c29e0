package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// videoExts are the file extensions List takes from a folder.
var videoExts = []string{".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".gif"}

// List returns the video files of src: a folder (its video files, sorted
// by name, not recursing) or a CSV file whose header has a "video" column
// (OpenVid-1M's layout), its names taken relative to videoDir (the CSV's
// own folder when empty). Listed files are not opened: a missing one is
// reported when it is decoded.
func List(src, videoDir string) ([]string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if st.IsDir() {
		entries, err := os.ReadDir(src)
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		var out []string
		for _, e := range entries {
			if !e.IsDir() && slices.Contains(videoExts, strings.ToLower(filepath.Ext(e.Name()))) {
				out = append(out, filepath.Join(src, e.Name()))
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("data: %s holds no video files (%s)", src, strings.Join(videoExts, ", "))
		}
		return out, nil
	}
	return listCSV(src, videoDir)
}

func listCSV(path, videoDir string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	if videoDir == "" {
		videoDir = filepath.Dir(path)
	}
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("data: %s: reading the header: %w", path, err)
	}
	col := slices.IndexFunc(header, func(h string) bool { return strings.EqualFold(strings.TrimSpace(h), "video") })
	if col < 0 {
		return nil, fmt.Errorf("data: %s: no \"video\" column in the header %q", path, header)
	}
	var out []string
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("data: %s line %d: %w", path, line, err)
		}
		if col >= len(rec) || strings.TrimSpace(rec[col]) == "" {
			return nil, fmt.Errorf("data: %s line %d: no video name", path, line)
		}
		name := strings.TrimSpace(rec[col])
		if !filepath.IsAbs(name) {
			name = filepath.Join(videoDir, name)
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("data: %s lists no videos", path)
	}
	return out, nil
}
