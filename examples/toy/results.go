package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// runFile is what one phase of the experiment measured, kept in the work
// folder as JSON so that a later command resumes after it and the table
// is built from every phase's file.
type runFile struct {
	Job     string      `json:"job"`
	Seed    uint64      `json:"seed"`
	Command string      `json:"command"`
	Device  string      `json:"device"`
	Started time.Time   `json:"started"`
	Stages  []stageLine `json:"stages"`
	Rows    []row       `json:"rows"`
	Loss    float64     `json:"loss,omitempty"` // the teacher's final training loss
	// Watched is the last stage's validation readings (-watch), and Best
	// the step of the lowest, whose student has rows of its own.
	Watched []watchPoint `json:"watched,omitempty"`
	Best    int          `json:"best,omitempty"`
	// Settings are the experiment's settings when the run was written
	// (absent from older files, whose Command says them).
	Settings *experiment `json:"settings,omitempty"`
}

// settings are the settings r ran with: its recorded ones, else those its
// recorded command gives under today's defaults; ok is false when r holds
// neither.
func (r runFile) settings() (o experiment, ok bool) {
	if r.Settings != nil {
		return *r.Settings, true
	}
	if r.Command == "" {
		return o, false
	}
	o, err := settingsOf(r.Command)
	return o, err == nil
}

// readRun reads a phase's file; ok is false when the phase has not run.
func readRun(path string) (r runFile, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, fmt.Errorf("%s: %w", path, err)
	}
	return r, true, nil
}

// writeRun writes a phase's file atomically: a phase that was cut short
// leaves no file and runs again.
func writeRun(path string, r runFile) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func seedDir(work string, seed uint64) string {
	return filepath.Join(work, fmt.Sprintf("seed-%d", seed))
}

func jobFile(work string, seed uint64, job string) string {
	return filepath.Join(seedDir(work, seed), job+".json")
}
