package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Index is the content of a *.safetensors.index.json file describing a
// sharded checkpoint.
type Index struct {
	// Metadata is the free-form "metadata" object (total_size, say), or
	// nil when absent.
	Metadata map[string]any `json:"metadata"`
	// WeightMap maps each tensor name to the base name of its shard file.
	WeightMap map[string]string `json:"weight_map"`
}

// ReadIndex reads and validates the sharded-checkpoint index at path. An
// unreadable file, invalid JSON, a missing or empty weight_map, an empty
// tensor name, and a shard name that is not a plain file name (a path
// separator, "." or "..") are errors naming the path.
func ReadIndex(path string) (*Index, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	idx, err := parseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return idx, nil
}

func parseIndex(b []byte) (*Index, error) {
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("invalid index JSON: %v", err)
	}
	if idx.WeightMap == nil {
		return nil, errors.New("index has no weight_map")
	}
	if len(idx.WeightMap) == 0 {
		return nil, errors.New("index weight_map is empty")
	}
	for name, shard := range idx.WeightMap {
		if name == "" {
			return nil, errors.New("weight_map holds an empty tensor name")
		}
		if err := checkShardName(shard); err != nil {
			return nil, fmt.Errorf("weight_map entry %q: %w", name, err)
		}
	}
	return &idx, nil
}

// checkShardName accepts only plain file names that stay inside the
// index's directory.
func checkShardName(s string) error {
	switch {
	case s == "":
		return errors.New("empty shard file name")
	case s == "." || s == "..":
		return fmt.Errorf("shard file name %q is not a file name", s)
	case strings.ContainsAny(s, "/\\\x00"):
		return fmt.Errorf("shard file name %q must be a plain base name", s)
	}
	return nil
}
