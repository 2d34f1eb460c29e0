package safetensors

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Checkpoint is a set of opened safetensors files: either one file or the
// shards of a checkpoint described by an index. Close unmaps them all.
type Checkpoint struct {
	// Index is the parsed index, or nil for a single-file checkpoint.
	Index *Index

	files []*File
	owner map[string]*File
}

// OpenCheckpoint opens a single .safetensors file or, when path ends in
// ".json", every shard listed by the index at path. Shard paths are
// relative to the index's directory. Each weight_map entry must exist in
// the shard it names, and no tensor may appear in two shards; a shard may
// hold tensors the index does not list. Any file that cannot be opened
// (see Open), an invalid index (see ReadIndex) and a broken rule are
// errors naming the files; then nothing stays open.
func OpenCheckpoint(path string) (*Checkpoint, error) {
	if !strings.HasSuffix(path, ".json") {
		f, err := Open(path)
		if err != nil {
			return nil, err
		}
		c := &Checkpoint{files: []*File{f}, owner: make(map[string]*File)}
		for _, t := range f.Header.Tensors {
			c.owner[t.Name] = f
		}
		return c, nil
	}
	idx, err := ReadIndex(path)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{Index: idx, owner: make(map[string]*File)}
	if err := c.openShards(path, idx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Checkpoint) openShards(path string, idx *Index) error {
	dir := filepath.Dir(path)
	byShard := make(map[string]*File)
	var shards []string
	for _, s := range idx.WeightMap {
		if _, ok := byShard[s]; !ok {
			byShard[s] = nil
			shards = append(shards, s)
		}
	}
	slices.Sort(shards)
	for _, s := range shards {
		f, err := Open(filepath.Join(dir, s))
		if err != nil {
			return err
		}
		byShard[s] = f
		c.files = append(c.files, f)
		for _, t := range f.Header.Tensors {
			if prev, dup := c.owner[t.Name]; dup {
				return fmt.Errorf("safetensors: %s: tensor %q appears in both %s and %s",
					path, t.Name, filepath.Base(prev.Path), s)
			}
			c.owner[t.Name] = f
		}
	}
	names := make([]string, 0, len(idx.WeightMap))
	for name := range idx.WeightMap {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s := idx.WeightMap[name]
		switch got := c.owner[name]; {
		case got == nil:
			return fmt.Errorf("safetensors: %s: weight_map key %q not found in shard %s", path, name, s)
		case got != byShard[s]:
			return fmt.Errorf("safetensors: %s: weight_map key %q not found in shard %s (it is in %s)",
				path, name, s, filepath.Base(got.Path))
		}
	}
	return nil
}

// Names returns every tensor name in the checkpoint, sorted.
func (c *Checkpoint) Names() []string {
	names := make([]string, 0, len(c.owner))
	for name := range c.owner {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Lookup returns the file holding the named tensor and its description,
// and whether the checkpoint has it.
func (c *Checkpoint) Lookup(name string) (*File, Info, bool) {
	f, ok := c.owner[name]
	if !ok {
		return nil, Info{}, false
	}
	info, _ := f.Info(name)
	return f, info, true
}

// Close unmaps every file of the checkpoint, returning the errors of
// those that fail, joined. It is safe to call more than once.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
