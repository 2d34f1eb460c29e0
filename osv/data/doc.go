// Package data is OSV's training video data: clips decoded from video
// files by the ffmpeg program, F frames at a target frame rate, scaled to
// cover W×H and centre-cropped; the first frame is the conditioning image.
//
// Entry points: List finds the videos of a folder or of a CSV in
// OpenVid-1M's layout (a "video" column of file names); Decode reads one
// clip; DecodeFrames reads one at the video's own size (the first frames,
// or frames evenly spaced), as evaluation wants them; Stream decodes many
// in parallel (golang.org/x/sync/errgroup) with
// a bounded number of clips in memory, delivering them in input order. A
// corrupt, short or missing video is skipped, reported and counted, never
// fatal.
package data
