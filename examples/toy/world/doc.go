// Package world is a synthetic video world for checking, at small scale and
// end to end, that a one-step image-to-video distillation method learns
// plausible motion.
//
// A clip shows a few coloured squares on a black background. Each square
// moves with a constant velocity and bounces elastically off the walls of
// the square frame. Config describes the world, Config.Sample draws a clip
// (its objects, its pixels and the true object centres per frame) and
// Config.Render draws one frame of a set of objects.
//
// The package also evaluates generated videos against the world's ground
// truth without any pretrained network:
//
//   - Config.Track recovers each palette colour's centroid per frame by
//     colour matching, and Config.MeasureMotion turns the tracks into motion
//     statistics (speed, smoothness, persistence), summarised over many
//     clips by Summarize.
//   - Config.Features maps one clip to a fixed-length vector of appearance
//     and motion statistics; Frechet measures the Fréchet distance between
//     two sets of such vectors (after an optional Standardize),
//     FeatureTerms says which features that distance comes from, and
//     Wasserstein1 compares two one-dimensional samples, such as per-clip
//     speeds.
//
// Pixel values are float32 in [-1, 1], laid out frame-major and then
// channel, row, column (CHW per frame). Positions are in pixels, with the
// centre of pixel (row, col) at (col+0.5, row+0.5).
package world
