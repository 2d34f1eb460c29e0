package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
)

// rawFile builds the bytes of a safetensors file from a literal JSON header
// and dataLen zero bytes of data.
func rawFile(header string, dataLen int) []byte {
	b := make([]byte, 8, 8+len(header)+dataLen)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	tensors := []Tensor{
		{Name: "f32", DType: F32, Shape: []int64{2, 3}, Data: seq(24)},
		{Name: "f16", DType: F16, Shape: []int64{4}, Data: seq(8)},
		{Name: "bf16", DType: BF16, Shape: []int64{2, 2}, Data: seq(8)},
		{Name: "f64", DType: F64, Shape: []int64{1}, Data: seq(8)},
		{Name: "i64", DType: I64, Shape: []int64{3}, Data: seq(24)},
		{Name: "i32", DType: I32, Shape: []int64{2}, Data: seq(8)},
		{Name: "i16", DType: I16, Shape: []int64{2}, Data: seq(4)},
		{Name: "i8", DType: I8, Shape: []int64{5}, Data: seq(5)},
		{Name: "u8", DType: U8, Shape: []int64{3}, Data: seq(3)},
		{Name: "mask", DType: Bool, Shape: []int64{2}, Data: []byte{1, 0}},
		{Name: "scalar", DType: F32, Shape: nil, Data: seq(4)},
		{Name: "empty", DType: F32, Shape: []int64{0, 4}, Data: nil},
	}
	md := map[string]string{"format": "pt", "note": "<a&b>"}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	require.NoError(t, Write(path, tensors, md))
	_, err := os.Stat(path + ".tmp")
	require.True(t, os.IsNotExist(err), "temporary file left behind")

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, path, f.Path)
	require.Equal(t, md, f.Header.Metadata)
	require.Zero(t, f.Header.DataStart%8, "data start must be 8-byte aligned")

	want := make([]string, len(tensors))
	for i, tt := range tensors {
		want[i] = tt.Name
	}
	require.Equal(t, want, f.Names())

	for _, tt := range tensors {
		info, ok := f.Info(tt.Name)
		require.True(t, ok, tt.Name)
		require.Equal(t, tt.DType, info.DType, tt.Name)
		require.Equal(t, len(tt.Shape), len(info.Shape), tt.Name)
		for i := range tt.Shape {
			require.Equal(t, tt.Shape[i], info.Shape[i], tt.Name)
		}
		b, err := f.Bytes(tt.Name)
		require.NoError(t, err, tt.Name)
		require.Equal(t, len(tt.Data), len(b), tt.Name)
		require.Equal(t, len(b), cap(b), tt.Name)
		if len(tt.Data) > 0 {
			require.Equal(t, tt.Data, b, tt.Name)
		}
	}

	scalar, _ := f.Info("scalar")
	require.NotNil(t, scalar.Shape)
	require.Empty(t, scalar.Shape)

	// The header is JSON with sorted keys, padded with spaces.
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	n := binary.LittleEndian.Uint64(raw[:8])
	require.Zero(t, n%8)
	hdr := string(raw[8 : 8+n])
	require.Contains(t, hdr, `"note":"<a&b>"`)
	keys := []string{`"bf16"`, `"empty"`, `"f16"`, `"f32"`}
	last := -1
	for _, k := range keys {
		i := strings.Index(hdr, k)
		require.Greater(t, i, last, k)
		last = i
	}
	h, err := ParseHeader(raw, int64(len(raw)))
	require.NoError(t, err)
	require.Len(t, h.Tensors, len(tensors))

	require.NoError(t, f.Close())
	require.NoError(t, f.Close())
	_, err = f.Bytes("f32")
	require.ErrorContains(t, err, "closed")
}

func TestWriteNoMetadata(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	require.NoError(t, Write(path, []Tensor{{Name: "a", DType: U8, Shape: []int64{1}, Data: []byte{9}}}, nil))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	require.Nil(t, f.Header.Metadata)
	b, err := f.Bytes("a")
	require.NoError(t, err)
	require.Equal(t, []byte{9}, b)
}

func TestWriteErrors(t *testing.T) {
	cases := []struct {
		name    string
		tensors []Tensor
		want    string
	}{
		{"size", []Tensor{{Name: "w", DType: F32, Shape: []int64{2}, Data: seq(7)}}, `"w"`},
		{"dtype", []Tensor{{Name: "w", DType: "Q4", Shape: []int64{2}, Data: seq(2)}}, `"Q4"`},
		{"dup", []Tensor{
			{Name: "w", DType: U8, Shape: []int64{1}, Data: seq(1)},
			{Name: "w", DType: U8, Shape: []int64{1}, Data: seq(1)},
		}, `duplicate tensor name "w"`},
		{"empty name", []Tensor{{Name: "", DType: U8, Shape: []int64{1}, Data: seq(1)}}, "empty name"},
		{"reserved", []Tensor{{Name: "__metadata__", DType: U8, Shape: []int64{1}, Data: seq(1)}}, "reserved"},
		{"negative", []Tensor{{Name: "w", DType: U8, Shape: []int64{-1}, Data: nil}}, "negative dimension"},
		// JSON would store these as U+FFFD: the tensor under another name.
		{"name not UTF-8", []Tensor{{Name: "w\xa8", DType: U8, Shape: []int64{1}, Data: seq(1)}}, `tensor name "w\xa8" is not valid UTF-8`},
		{"metadata key not UTF-8", []Tensor{{Name: "w", DType: U8, Shape: []int64{1}, Data: seq(1)}}, `metadata "k\xff": "v" is not valid UTF-8`},
		{"metadata value not UTF-8", []Tensor{{Name: "w", DType: U8, Shape: []int64{1}, Data: seq(1)}}, `metadata "k": "v\xff" is not valid UTF-8`},
	}
	metadata := map[string]map[string]string{
		"metadata key not UTF-8":   {"k\xff": "v"},
		"metadata value not UTF-8": {"k": "v\xff"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".safetensors")
			err := Write(path, c.tensors, metadata[c.name])
			require.ErrorContains(t, err, c.want)
			require.True(t, strings.HasPrefix(err.Error(), "safetensors: "), err.Error())
			_, statErr := os.Stat(path)
			require.True(t, os.IsNotExist(statErr))
			_, statErr = os.Stat(path + ".tmp")
			require.True(t, os.IsNotExist(statErr))
		})
	}
}

func TestParseHeaderErrors(t *testing.T) {
	ok := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	cases := []struct {
		name   string
		prefix []byte
		size   int64
		want   string
	}{
		{"short file", []byte{1, 2, 3}, 3, "shorter than"},
		{"short prefix", []byte{1, 2, 3}, 100, "shorter than"},
		{"zero length", rawFile("", 8), 16, "header length is 0"},
		{"too large", func() []byte {
			b := make([]byte, 8)
			binary.LittleEndian.PutUint64(b, MaxHeaderSize+1)
			return b
		}(), 1 << 30, "exceeds the maximum"},
		{"huge length", func() []byte {
			b := make([]byte, 8)
			binary.LittleEndian.PutUint64(b, ^uint64(0))
			return b
		}(), 1 << 30, "exceeds the maximum"},
		{"past end", rawFile(ok, 8), int64(8 + len(ok) - 1), "past the end of the file"},
		{"prefix missing header", rawFile(ok, 8)[:20], int64(8 + len(ok) + 8), "header needs"},
		{"invalid json", rawFile(`{"a":`, 0), 13, "not valid JSON"},
		{"garbage", rawFile(`nope`, 0), 12, "not valid JSON"},
		{"array", rawFile(`[1,2]`, 0), 13, "not a JSON object"},
		{"null", rawFile(`null`, 0), 12, "not a JSON object"},
		{"trailing", rawFile(`{} {}`, 0), 13, "trailing data"},
		{"duplicate", rawFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, 0), 0, `duplicate key "a"`},
		{"entry not object", rawFile(`{"w":5}`, 0), 0, `"w"`},
		{"unknown dtype", rawFile(`{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}}`, 2), 0, `tensor "w" has unknown dtype "Q4"`},
		{"missing shape", rawFile(`{"w":{"dtype":"U8","data_offsets":[0,2]}}`, 2), 0, `tensor "w" has no shape`},
		{"negative dim", rawFile(`{"w":{"dtype":"U8","shape":[2,-1],"data_offsets":[0,2]}}`, 2), 0, "negative dimension"},
		{"overflow", rawFile(`{"w":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,2]}}`, 2), 0, "overflow"},
		{"byte overflow", rawFile(`{"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,2]}}`, 2), 0, "overflow"},
		{"fractional dim", rawFile(`{"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,2]}}`, 2), 0, `tensor "w"`},
		{"offsets count", rawFile(`{"w":{"dtype":"U8","shape":[2],"data_offsets":[0]}}`, 2), 0, "2 entries"},
		{"negative offset", rawFile(`{"w":{"dtype":"U8","shape":[2],"data_offsets":[-2,0]}}`, 2), 0, "negative data_offsets"},
		{"end before begin", rawFile(`{"w":{"dtype":"U8","shape":[2],"data_offsets":[4,2]}}`, 8), 0, "end before begin"},
		{"beyond data", rawFile(`{"w":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}`, 6), 0, `tensor "w" data_offsets [4, 8] run past the end of the data region (6 bytes)`},
		{"size mismatch", rawFile(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}`, 16), 0, `tensor "w": dtype F32 shape [4] expects 16 bytes, got 12`},
		{"overlap", rawFile(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, 8), 0, `tensors "a" [0, 4] and "b" [2, 6] overlap`},
		{"metadata number", rawFile(`{"__metadata__":{"k":1}}`, 0), 0, "__metadata__ must be an object of strings"},
		{"metadata array", rawFile(`{"__metadata__":["x"]}`, 0), 0, "__metadata__ must be an object of strings"},
		{"metadata null", rawFile(`{"__metadata__":null}`, 0), 0, "__metadata__ must be an object of strings"},
		{"metadata tensor", rawFile(`{"__metadata__":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, 0), 0, "__metadata__ must be an object of strings"},
		{"empty name", rawFile(`{"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, 0), 0, "empty name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			size := c.size
			if size == 0 {
				size = int64(len(c.prefix))
			}
			h, err := ParseHeader(c.prefix, size)
			require.Nil(t, h)
			require.ErrorContains(t, err, c.want)
			require.True(t, strings.HasPrefix(err.Error(), "safetensors: "), err.Error())
		})
	}
}

func TestParseHeaderAccepts(t *testing.T) {
	// Gaps between tensors, zero-size tensors sharing an offset, an empty
	// header object, whitespace padding and unknown entry fields are fine.
	hdr := `{"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6],"extra":true},` +
		`"z":{"dtype":"U8","shape":[0],"data_offsets":[4,4]},` +
		`"a":{"dtype":"I16","shape":[1],"data_offsets":[0,2]}}   `
	raw := rawFile(hdr, 8)
	h, err := ParseHeader(raw, int64(len(raw)))
	require.NoError(t, err)
	require.Equal(t, int64(8+len(hdr)), h.DataStart)
	var names []string
	for _, ti := range h.Tensors {
		names = append(names, ti.Name)
	}
	require.Equal(t, []string{"a", "b", "z"}, names)
	require.Nil(t, h.Metadata)

	raw = rawFile(`{}`, 0)
	h, err = ParseHeader(raw, int64(len(raw)))
	require.NoError(t, err)
	require.Empty(t, h.Tensors)
}

func writeTwo(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, Write(path, []Tensor{
		{Name: "first", DType: F32, Shape: []int64{4}, Data: seq(16)},
		{Name: "second", DType: F16, Shape: []int64{3}, Data: seq(6)},
	}, nil))
}

func TestOpenTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trunc.safetensors")
	writeTwo(t, path)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, st.Size()-3))
	_, err = Open(path)
	require.ErrorContains(t, err, `tensor "second"`)
	require.ErrorContains(t, err, "past the end of the data region")
	require.ErrorContains(t, err, path)

	// Cut inside the header.
	require.NoError(t, os.Truncate(path, 20))
	_, err = Open(path)
	require.ErrorContains(t, err, "past the end of the file")
	require.ErrorContains(t, err, path)
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "missing.safetensors"))
	require.ErrorContains(t, err, "missing.safetensors")

	tiny := filepath.Join(dir, "tiny.safetensors")
	require.NoError(t, os.WriteFile(tiny, []byte{1, 2, 3}, 0o644))
	_, err = Open(tiny)
	require.ErrorContains(t, err, "shorter than")
	require.ErrorContains(t, err, tiny)

	_, err = Open(dir)
	require.ErrorContains(t, err, dir)

	bad := filepath.Join(dir, "bad.safetensors")
	require.NoError(t, os.WriteFile(bad, rawFile(`{"w":{"dtype":"X9","shape":[1],"data_offsets":[0,1]}}`, 1), 0o644))
	_, err = Open(bad)
	require.ErrorContains(t, err, `tensor "w" has unknown dtype "X9"`)
	require.ErrorContains(t, err, bad)
}

func TestBytesMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	writeTwo(t, path)
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Bytes("nope")
	require.ErrorContains(t, err, `"nope"`)
	require.ErrorContains(t, err, path)
	_, ok := f.Info("nope")
	require.False(t, ok)
}

func writeIndex(t *testing.T, path string, weightMap map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"metadata":   map[string]any{"total_size": 46},
		"weight_map": weightMap,
	})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

func writeShards(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, Write(filepath.Join(dir, "model-00001-of-00002.safetensors"), []Tensor{
		{Name: "a.weight", DType: F32, Shape: []int64{2, 2}, Data: seq(16)},
		{Name: "a.bias", DType: F32, Shape: []int64{2}, Data: seq(8)},
	}, map[string]string{"format": "pt"}))
	require.NoError(t, Write(filepath.Join(dir, "model-00002-of-00002.safetensors"), []Tensor{
		{Name: "b.weight", DType: BF16, Shape: []int64{3, 1}, Data: seq(6)},
		{Name: "b.bias", DType: I64, Shape: []int64{2}, Data: seq(16)},
	}, nil))
}

var shardMap = map[string]string{
	"a.weight": "model-00001-of-00002.safetensors",
	"a.bias":   "model-00001-of-00002.safetensors",
	"b.weight": "model-00002-of-00002.safetensors",
	"b.bias":   "model-00002-of-00002.safetensors",
}

func TestCheckpointSharded(t *testing.T) {
	dir := t.TempDir()
	writeShards(t, dir)
	idxPath := filepath.Join(dir, "model.safetensors.index.json")
	writeIndex(t, idxPath, shardMap)

	idx, err := ReadIndex(idxPath)
	require.NoError(t, err)
	require.Equal(t, shardMap, idx.WeightMap)
	require.EqualValues(t, 46, idx.Metadata["total_size"])

	c, err := OpenCheckpoint(idxPath)
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, []string{"a.bias", "a.weight", "b.bias", "b.weight"}, c.Names())
	for name, shard := range shardMap {
		f, info, ok := c.Lookup(name)
		require.True(t, ok, name)
		require.Equal(t, shard, filepath.Base(f.Path))
		require.Equal(t, name, info.Name)
		b, err := f.Bytes(name)
		require.NoError(t, err)
		require.Equal(t, int(info.End-info.Begin), len(b))
	}
	f, info, ok := c.Lookup("b.weight")
	require.True(t, ok)
	require.Equal(t, BF16, info.DType)
	require.Equal(t, []int64{3, 1}, info.Shape)
	b, err := f.Bytes("b.weight")
	require.NoError(t, err)
	require.Equal(t, seq(6), b)
	_, _, ok = c.Lookup("c.weight")
	require.False(t, ok)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
}

func TestCheckpointSingle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "one.safetensors")
	writeTwo(t, path)
	c, err := OpenCheckpoint(path)
	require.NoError(t, err)
	defer c.Close()
	require.Nil(t, c.Index)
	require.Equal(t, []string{"first", "second"}, c.Names())
	f, info, ok := c.Lookup("second")
	require.True(t, ok)
	require.Equal(t, path, f.Path)
	require.Equal(t, F16, info.DType)
}

func TestCheckpointErrors(t *testing.T) {
	dir := t.TempDir()
	writeShards(t, dir)
	idxPath := filepath.Join(dir, "model.safetensors.index.json")

	withKey := func(key, shard string) map[string]string {
		m := map[string]string{}
		for k, v := range shardMap {
			m[k] = v
		}
		m[key] = shard
		return m
	}

	writeIndex(t, idxPath, withKey("c.weight", "model-00002-of-00002.safetensors"))
	_, err := OpenCheckpoint(idxPath)
	require.ErrorContains(t, err, `"c.weight"`)
	require.ErrorContains(t, err, "model-00002-of-00002.safetensors")

	writeIndex(t, idxPath, withKey("a.bias", "model-00002-of-00002.safetensors"))
	_, err = OpenCheckpoint(idxPath)
	require.ErrorContains(t, err, `"a.bias"`)
	require.ErrorContains(t, err, "not found in shard model-00002-of-00002.safetensors")

	writeIndex(t, idxPath, withKey("x", "missing.safetensors"))
	_, err = OpenCheckpoint(idxPath)
	require.ErrorContains(t, err, "missing.safetensors")

	// The same tensor stored in two shards.
	dup := filepath.Join(dir, "dup.safetensors")
	writeIndex(t, idxPath, withKey("z", "dup.safetensors"))
	require.NoError(t, Write(dup, []Tensor{
		{Name: "a.bias", DType: F32, Shape: []int64{2}, Data: seq(8)},
		{Name: "z", DType: U8, Shape: []int64{1}, Data: seq(1)},
	}, nil))
	_, err = OpenCheckpoint(idxPath)
	require.ErrorContains(t, err, `tensor "a.bias" appears in both`)

	for _, bad := range []string{"../evil.safetensors", "sub/x.safetensors", "..", ""} {
		writeIndex(t, idxPath, withKey("a.bias", bad))
		_, err = ReadIndex(idxPath)
		require.Error(t, err, bad)
		require.ErrorContains(t, err, idxPath)
		_, err = OpenCheckpoint(idxPath)
		require.Error(t, err, bad)
	}

	writeIndex(t, idxPath, map[string]string{})
	_, err = ReadIndex(idxPath)
	require.ErrorContains(t, err, "weight_map is empty")

	require.NoError(t, os.WriteFile(idxPath, []byte(`{"metadata":{}}`), 0o644))
	_, err = ReadIndex(idxPath)
	require.ErrorContains(t, err, "no weight_map")
	require.ErrorContains(t, err, idxPath)

	require.NoError(t, os.WriteFile(idxPath, []byte(`{"weight_map":`), 0o644))
	_, err = ReadIndex(idxPath)
	require.ErrorContains(t, err, "invalid index JSON")
}

// The fixture's UNet weights read through File and Checkpoint agree with
// the file read independently: its JSON header's keys, dtypes, shapes and
// offsets, its data bytes, and the layout its config gives conv_in.
func TestFixture(t *testing.T) {
	path := fixture.Path("pipeline", "unet", "diffusion_pytorch_model.safetensors")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	n := binary.LittleEndian.Uint64(raw[:8])
	var entries map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw[8:8+n], &entries))
	var md map[string]string
	require.NoError(t, json.Unmarshal(entries[metadataKey], &md))
	delete(entries, metadataKey)
	require.NotEmpty(t, entries)

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	require.Len(t, f.Names(), len(entries))
	require.Equal(t, md, f.Header.Metadata)
	require.Equal(t, "pt", f.Header.Metadata["format"])
	for name, e := range entries {
		var want struct {
			DType       DType   `json:"dtype"`
			Shape       []int64 `json:"shape"`
			DataOffsets []int64 `json:"data_offsets"`
		}
		require.NoError(t, json.Unmarshal(e, &want), name)
		info, ok := f.Info(name)
		require.True(t, ok, name)
		require.Equal(t, want.DType, info.DType, name)
		require.Equal(t, want.Shape, info.Shape, name)
		require.Equal(t, want.DataOffsets, []int64{info.Begin, info.End}, name)
		b, err := f.Bytes(name)
		require.NoError(t, err)
		start := 8 + int64(n)
		require.Equal(t, raw[start+want.DataOffsets[0]:start+want.DataOffsets[1]], b, name)
	}

	// conv_in is [block_out_channels[0], in_channels, 3, 3] float32.
	var cfg struct {
		InChannels       int64   `json:"in_channels"`
		BlockOutChannels []int64 `json:"block_out_channels"`
	}
	cb, err := os.ReadFile(fixture.Path("pipeline", "unet", "config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(cb, &cfg))
	require.NotEmpty(t, cfg.BlockOutChannels)
	info, ok := f.Info("conv_in.weight")
	require.True(t, ok)
	require.Equal(t, F32, info.DType)
	require.Equal(t, []int64{cfg.BlockOutChannels[0], cfg.InChannels, 3, 3}, info.Shape)
	b, err := f.Bytes("conv_in.weight")
	require.NoError(t, err)
	require.Len(t, b, int(cfg.BlockOutChannels[0]*cfg.InChannels*3*3*4))

	c, err := OpenCheckpoint(path)
	require.NoError(t, err)
	defer c.Close()
	require.ElementsMatch(t, f.Names(), c.Names())
}
