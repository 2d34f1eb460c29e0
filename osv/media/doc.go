// Package media turns files into conditioning images and generated frames
// into files: image in, video out. It is pure Go (the standard library's
// image codecs) except WriteMP4, which runs the ffmpeg program.
//
// Entry points:
//
//   - LoadImage reads a PNG or JPEG file, recognised by its content, and
//     applies its EXIF orientation as diffusers' load_image does.
//   - Fit resizes the conditioning image to the model's width×height in a
//     FitMode (ParseFitMode reads one from a flag).
//   - ToCHW, FromCHW and FramesFromBFCHW move between images and float32
//     planar RGB buffers ([3,H,W] and [B,F,3,H,W]) in [0,1].
//   - WriteGIF, WritePNGs (files named by FrameName), WriteMP4 (ErrNoFFmpeg
//     without ffmpeg) and WriteVideo, which picks one of them by the path's
//     extension, write a clip's frames.
//
// Resizing. Fit's default mode, FitCrop, scales the image to cover
// width×height, keeping its aspect ratio, and keeps the centre; FitStretch
// scales each axis on its own, as diffusers' SVD pipeline does (its image
// processor's "default" resize mode, Pillow's LANCZOS filter). The
// resampler is a separable Lanczos-3 filter on the 8-bit sRGB values (no
// linearisation, as Pillow's LANCZOS resize that diffusers uses). On
// downscale its support widens by the scale factor, so it also filters
// out what the smaller grid cannot hold (no aliasing). Taps that fall
// outside the image are dropped and the remaining weights renormalised;
// with a crop, taps just outside the kept rectangle but inside the image
// are used, so a crop equals resizing the whole image and cutting out the
// centre. An image that already has the requested size is returned as is.
//
// Colour. Every function here reads the straight (un-premultiplied) colour
// of each pixel and ignores alpha, as Pillow's convert("RGB") in diffusers'
// load_image does; images that Fit and FromCHW return are opaque. A JPEG's
// YCbCr pixels are read as the 8-bit RGB of color.YCbCrToRGB.
//
// Quantisation. FromCHW clamps to [0,1], multiplies by 255 in float32 and
// rounds half to even, as diffusers' numpy_to_pil ((x*255).round() in
// NumPy) does; NaN becomes 0. On 8-bit input ToCHW followed by FromCHW
// gives back the same pixels.
//
// GIF. WriteGIF builds one palette for the whole clip by median cut
// (256 colours from a 5-bit-per-channel histogram of every frame; each
// colour is the mean of its box), then maps each frame to it with
// Floyd–Steinberg error diffusion. One palette keeps static regions from
// flickering between frames. The frame delay is 100/fps hundredths of a
// second, rounded half away from zero, at least 2 (browsers slow shorter
// delays down), and the clip loops forever. The median cut's 5-bit bins
// and the 6-bit cache of nearest palette colours trade a little accuracy
// for speed; the dithering makes up for it on average.
//
// Files are written to a temporary name in the destination folder and
// renamed into place, so a failed write leaves no partial file.
package media
