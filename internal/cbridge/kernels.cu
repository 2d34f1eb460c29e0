// kernels.cu: fused elementwise kernels for inference on CUDA, built by
// nvcc into a static library when the bridge is built with CUDA. They see
// raw pointers only; fused.cc checks shapes, layouts and dtypes, and falls
// back to ATen's operators for everything else (and wherever autograd
// needs a graph).
//
// Activations are [N, C, spatial...] in one of two dense layouts: the
// default one (channel c of sample n is a run of S elements, inner = S) or
// channels-last (the C channels of a position are adjacent, inner = 1).
// Element i then has channel (i / inner) % C and sample i / (C·S).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace {

template <typename T>
__device__ __forceinline__ float load(T v);
template <>
__device__ __forceinline__ float load<float>(float v) { return v; }
template <>
__device__ __forceinline__ float load<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float load<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T store(float v);
template <>
__device__ __forceinline__ float store<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half store<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 store<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ float silu(float v) { return v / (1.0f + __expf(-v)); }

__device__ __forceinline__ float gelu(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }

// A vector of V elements moved as one 16-byte access.
template <typename T, int V>
struct alignas(16) vec {
  T v[V];
};

// How vectors map to channels: with inner = 1 a vector holds V adjacent
// channels (C a multiple of V); otherwise one channel (inner a multiple of V).
struct layout {
  int64_t total, C, inner, per_n;
};

// affine_act: y = act(x·scale[n, c] + shift[n, c]), scale and shift float
// [N, C]; act 0 identity, 1 SiLU.
template <typename T, int V>
__global__ void affine_act_kernel(const T* __restrict__ x, T* __restrict__ y, const float* __restrict__ scale,
                                  const float* __restrict__ shift, layout l, int act) {
  const int64_t nv = l.total / V;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < nv; k += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = k * V;
    const int64_t n = i / l.per_n;
    const int64_t c0 = (i / l.inner) % l.C;
    vec<T, V> in = reinterpret_cast<const vec<T, V>*>(x)[k];
    vec<T, V> out;
#pragma unroll
    for (int j = 0; j < V; j++) {
      const int64_t c = l.inner == 1 ? c0 + j : c0;
      float v = load<T>(in.v[j]) * scale[n * l.C + c] + shift[n * l.C + c];
      if (act == 1) v = silu(v);
      out.v[j] = store<T>(v);
    }
    reinterpret_cast<vec<T, V>*>(y)[k] = out;
  }
}

// residual: out = x + alpha·(h + b[c]); alpha is a float on the device (or
// 1 when null), b float [C] (or none when null).
template <typename T, int V>
__global__ void residual_kernel(const T* __restrict__ x, const T* __restrict__ h, const float* __restrict__ b,
                                const float* __restrict__ alpha, T* __restrict__ out, layout l) {
  const float a = alpha == nullptr ? 1.0f : *alpha;
  const int64_t nv = l.total / V;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < nv; k += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = k * V;
    const int64_t c0 = (i / l.inner) % l.C;
    vec<T, V> xv = reinterpret_cast<const vec<T, V>*>(x)[k];
    vec<T, V> hv = reinterpret_cast<const vec<T, V>*>(h)[k];
    vec<T, V> o;
#pragma unroll
    for (int j = 0; j < V; j++) {
      const int64_t c = l.inner == 1 ? c0 + j : c0;
      float d = load<T>(hv.v[j]);
      if (b != nullptr) d += b[c];
      o.v[j] = store<T>(load<T>(xv.v[j]) + a * d);
    }
    reinterpret_cast<vec<T, V>*>(out)[k] = o;
  }
}

// Channels-last statistics: x [N, S, C]; block (bx, n) sums its rows of
// sample n per channel into part[n][bx][0 or 1][C] (sum, sum of squares).
// Each thread owns V channels of every row it visits.
template <typename T, int V>
__global__ void stats_cl_kernel(const T* __restrict__ x, float* __restrict__ part, int64_t S, int64_t C) {
  const int64_t cv = C / V;                 // vectors per row
  const int64_t rows_per = blockDim.x / cv;  // rows a block visits at once
  const int64_t t = threadIdx.x;
  const int64_t n = blockIdx.y;
  float sum[V], sq[V];
#pragma unroll
  for (int j = 0; j < V; j++) sum[j] = sq[j] = 0.f;
  if (t < rows_per * cv) {
    const int64_t col = t % cv;
    const vec<T, V>* xs = reinterpret_cast<const vec<T, V>*>(x + n * S * C);
    for (int64_t r = blockIdx.x * rows_per + t / cv; r < S; r += (int64_t)gridDim.x * rows_per) {
      vec<T, V> in = xs[r * cv + col];
#pragma unroll
      for (int j = 0; j < V; j++) {
        const float v = load<T>(in.v[j]);
        sum[j] += v;
        sq[j] += v * v;
      }
    }
  }
  // Reduce the rows of the block per channel through shared memory: at
  // most blockDim.x·V floats for each of the two sums.
  extern __shared__ float sh[];
  float* ssum = sh;
  float* ssq = sh + blockDim.x * V;
#pragma unroll
  for (int j = 0; j < V; j++) {
    ssum[t * V + j] = sum[j];
    ssq[t * V + j] = sq[j];
  }
  __syncthreads();
  float* out = part + ((int64_t)n * gridDim.x + blockIdx.x) * 2 * C;
  for (int64_t c = t; c < C; c += blockDim.x) {
    const int64_t col = c / V, j = c % V;
    float a = 0.f, q = 0.f;
    for (int64_t r = 0; r < rows_per; r++) {
      a += ssum[(r * cv + col) * V + j];
      q += ssq[(r * cv + col) * V + j];
    }
    out[c] = a;
    out[C + c] = q;
  }
}

// Row statistics: x is `rows` contiguous rows of S elements; block
// (seg, row) sums its segment into part[row][seg][0 or 1].
template <typename T, int V>
__global__ void stats_rows_kernel(const T* __restrict__ x, float* __restrict__ part, int64_t S, int64_t seg_len) {
  const int64_t row = blockIdx.y;
  const int64_t start = blockIdx.x * seg_len;
  const int64_t end = min(S, start + seg_len);
  const vec<T, V>* xs = reinterpret_cast<const vec<T, V>*>(x + row * S);
  float sum = 0.f, sq = 0.f;
  for (int64_t k = start / V + threadIdx.x; k < end / V; k += blockDim.x) {
    vec<T, V> in = xs[k];
#pragma unroll
    for (int j = 0; j < V; j++) {
      const float v = load<T>(in.v[j]);
      sum += v;
      sq += v * v;
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    sum += __shfl_down_sync(0xffffffffu, sum, off);
    sq += __shfl_down_sync(0xffffffffu, sq, off);
  }
  __shared__ float wsum[32], wsq[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    wsum[warp] = sum;
    wsq[warp] = sq;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float a = 0.f, q = 0.f;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) {
      a += wsum[w];
      q += wsq[w];
    }
    float* out = part + (row * gridDim.x + blockIdx.x) * 2;
    out[0] = a;
    out[1] = q;
  }
}

// geglu: h [R, 2D] → out [R, D], out = h[:, :D]·gelu(h[:, D:]) (exact GELU).
template <typename T, int V>
__global__ void geglu_kernel(const T* __restrict__ h, T* __restrict__ out, int64_t R, int64_t D) {
  const int64_t dv = D / V;
  const int64_t nv = R * dv;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < nv; k += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = k / dv, col = k % dv;
    const vec<T, V>* row = reinterpret_cast<const vec<T, V>*>(h + r * 2 * D);
    vec<T, V> a = row[col], g = row[dv + col], o;
#pragma unroll
    for (int j = 0; j < V; j++) o.v[j] = store<T>(load<T>(a.v[j]) * gelu(load<T>(g.v[j])));
    reinterpret_cast<vec<T, V>*>(out)[k] = o;
  }
}

int grid_for(int64_t items, int threads) {
  int64_t g = (items + threads - 1) / threads;
  if (g > 65535LL * 32) g = 65535LL * 32;
  return static_cast<int>(g < 1 ? 1 : g);
}

}  // namespace

// Launchers. dtype: 0 float32, 1 float16, 2 bfloat16. Each returns 0, or
// a CUDA error code. The caller guarantees 16-byte aligned pointers and
// the divisibility the layout needs (see fused.cc).
extern "C" {

int osv_k_affine_act(int dtype, const void* x, void* y, const float* scale, const float* shift, int64_t total,
                     int64_t C, int64_t inner, int64_t per_n, int act, cudaStream_t stream) {
  const int threads = 256;
  switch (dtype) {
    case 0: {
      layout l{total, C, inner, per_n};
      affine_act_kernel<float, 4><<<grid_for(total / 4, threads), threads, 0, stream>>>(
          static_cast<const float*>(x), static_cast<float*>(y), scale, shift, l, act);
      break;
    }
    case 1: {
      layout l{total, C, inner, per_n};
      affine_act_kernel<__half, 8><<<grid_for(total / 8, threads), threads, 0, stream>>>(
          static_cast<const __half*>(x), static_cast<__half*>(y), scale, shift, l, act);
      break;
    }
    case 2: {
      layout l{total, C, inner, per_n};
      affine_act_kernel<__nv_bfloat16, 8><<<grid_for(total / 8, threads), threads, 0, stream>>>(
          static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), scale, shift, l, act);
      break;
    }
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

int osv_k_residual(int dtype, const void* x, const void* h, const float* b, const float* alpha, void* out,
                   int64_t total, int64_t C, int64_t inner, cudaStream_t stream) {
  const int threads = 256;
  layout l{total, C, inner, 0};
  switch (dtype) {
    case 0:
      residual_kernel<float, 4><<<grid_for(total / 4, threads), threads, 0, stream>>>(
          static_cast<const float*>(x), static_cast<const float*>(h), b, alpha, static_cast<float*>(out), l);
      break;
    case 1:
      residual_kernel<__half, 8><<<grid_for(total / 8, threads), threads, 0, stream>>>(
          static_cast<const __half*>(x), static_cast<const __half*>(h), b, alpha, static_cast<__half*>(out), l);
      break;
    case 2:
      residual_kernel<__nv_bfloat16, 8><<<grid_for(total / 8, threads), threads, 0, stream>>>(
          static_cast<const __nv_bfloat16*>(x), static_cast<const __nv_bfloat16*>(h), b, alpha,
          static_cast<__nv_bfloat16*>(out), l);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

// Channels-last statistics into part [N, blocks, 2, C], blocks from
// osv_k_stats_cl_blocks; C / vector width must be at most 256.
int osv_k_stats_cl_blocks(int64_t N, int64_t S) {
  (void)N;
  int64_t b = S / 64;
  if (b > 256) b = 256;
  return static_cast<int>(b < 1 ? 1 : b);
}

int osv_k_stats_cl(int dtype, const void* x, float* part, int64_t N, int64_t S, int64_t C, int blocks,
                   cudaStream_t stream) {
  const int V = dtype == 0 ? 4 : 8;
  const int64_t cv = C / V;
  if (cv < 1 || cv > 256) return static_cast<int>(cudaErrorInvalidValue);
  const int threads = static_cast<int>(cv * (256 / cv));
  const size_t shmem = 2 * static_cast<size_t>(threads) * V * sizeof(float);
  dim3 grid(blocks, static_cast<unsigned>(N));
  switch (dtype) {
    case 0:
      stats_cl_kernel<float, 4><<<grid, threads, shmem, stream>>>(static_cast<const float*>(x), part, S, C);
      break;
    case 1:
      stats_cl_kernel<__half, 8><<<grid, threads, shmem, stream>>>(static_cast<const __half*>(x), part, S, C);
      break;
    case 2:
      stats_cl_kernel<__nv_bfloat16, 8>
          <<<grid, threads, shmem, stream>>>(static_cast<const __nv_bfloat16*>(x), part, S, C);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

// Row statistics into part [rows, segs, 2], segments of seg_len elements
// (a multiple of the vector width).
int osv_k_stats_rows(int dtype, const void* x, float* part, int64_t rows, int64_t S, int64_t seg_len, int segs,
                     cudaStream_t stream) {
  const int threads = 256;
  dim3 grid(segs, static_cast<unsigned>(rows));
  switch (dtype) {
    case 0:
      stats_rows_kernel<float, 4><<<grid, threads, 0, stream>>>(static_cast<const float*>(x), part, S, seg_len);
      break;
    case 1:
      stats_rows_kernel<__half, 8><<<grid, threads, 0, stream>>>(static_cast<const __half*>(x), part, S, seg_len);
      break;
    case 2:
      stats_rows_kernel<__nv_bfloat16, 8>
          <<<grid, threads, 0, stream>>>(static_cast<const __nv_bfloat16*>(x), part, S, seg_len);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

int osv_k_geglu(int dtype, const void* h, void* out, int64_t R, int64_t D, cudaStream_t stream) {
  const int threads = 256;
  switch (dtype) {
    case 0:
      geglu_kernel<float, 4><<<grid_for(R * D / 4, threads), threads, 0, stream>>>(
          static_cast<const float*>(h), static_cast<float*>(out), R, D);
      break;
    case 1:
      geglu_kernel<__half, 8><<<grid_for(R * D / 8, threads), threads, 0, stream>>>(
          static_cast<const __half*>(h), static_cast<__half*>(out), R, D);
      break;
    case 2:
      geglu_kernel<__nv_bfloat16, 8><<<grid_for(R * D / 8, threads), threads, 0, stream>>>(
          static_cast<const __nv_bfloat16*>(h), static_cast<__nv_bfloat16*>(out), R, D);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // extern "C"
