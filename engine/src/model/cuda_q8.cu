// Q8_0 and Q4_K products for 1-8 activation rows with int8 activations (compiled by NVRTC
// at run time; see cuda_q8.rs for why and when they are used).
//
// A Q8_0 weight row is a run of 34-byte blocks: an f16 scale, then 32 int8 values. 34 is
// not a multiple of 4, so a thread cannot load a block's values as aligned words; but 8
// blocks are 272 bytes, 17 aligned 16-byte words. Each warp therefore streams its row in
// 16-block groups with 16-byte loads (every byte of every load used), parks a group in
// shared memory, and each thread takes half a block out of it with funnel shifts. The next
// group's loads are issued before the current group is computed, so a warp always has a
// load in flight.
//
// Measured on an H100 against variants (decoding steps of the 32B geometry, 3 rows): whole
// blocks per thread in 32-block chunks took more registers and ran 14% slower; splitting
// long rows over 2-4 warps ran 8% slower; two groups in flight instead of one, 7% slower.

typedef unsigned short ushort_t;

#define WARPS_PER_BLOCK 4
#define GROUP_BLOCKS 16
#define GROUP_WORDS 34          // 16-byte words per 16-block group (544 bytes)
#define GROUP_PAD_BYTES 560     // a thread may read one 4-byte word past the group

// x: [rows][cols] f32 → q: [rows][cols] int8 and d: [rows][cols / 32] f32 (see
// k2_quantize_lane). One warp per block.
extern "C" __global__ void k2_quantize_q8(
    const float* __restrict__ x, signed char* __restrict__ q, float* __restrict__ d,
    int blocks)
{
    const int block = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (block >= blocks) return;
    const size_t i = (size_t)block * 32 + (threadIdx.x & 31);
    k2_quantize_lane(x[i], q, d, i);
}

__device__ __forceinline__ float half_bits_to_float(ushort_t h)
{
    float f;
    asm("{ .reg .f16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ int4 load_streaming(const int4* p)
{
    int4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.s32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// y[c][row] = Σ_k w[row][k] · x[c][k] (+ bias[row]) for c < NC, with x given as int8 q and
// block scales d (k2_quantize_q8). One warp per weight row (the launch's `split` is 1).
// Each column is computed by the same sequence of operations whatever NC is, so 1 row and
// 8 rows give bit-identical results.
template <int NC>
__device__ void q8_0_product(
    const unsigned char* __restrict__ w, const signed char* __restrict__ q,
    const float* __restrict__ d, const float* __restrict__ bias, float* __restrict__ y,
    int rows, int cols, int /* split: always 1 */)
{
    __shared__ __align__(16) unsigned char stage[WARPS_PER_BLOCK][GROUP_PAD_BYTES];
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int row = blockIdx.x * WARPS_PER_BLOCK + warp;
    if (row >= rows) return;
    const int blocks = cols / 32;                  // the caller ensures blocks % 8 == 0
    const int groups = blocks / GROUP_BLOCKS;
    const bool half_group = (blocks % GROUP_BLOCKS) != 0;
    const int4* src = (const int4*)(w + (size_t)row * blocks * 34);
    unsigned char* buf = stage[warp];

    // This thread's half block within a group: block `j`, values 16·h .. 16·h + 15.
    const int j = lane >> 1, h = lane & 1;
    const int value_byte = 34 * j + 2 + 16 * h;
    const int word = value_byte >> 2, shift = (value_byte & 3) * 8;

    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; c++) acc[c] = 0.0f;

    const int steps = groups + (half_group ? 1 : 0);
    // Group s's 16-byte words into (a, b): 34 words, or 17 for a half group (8 blocks).
    auto load_group = [&](int s, int4& a, int4& b) {
        a = make_int4(0, 0, 0, 0);
        b = make_int4(0, 0, 0, 0);
        if (s >= steps) return;
        const int words = s < groups ? GROUP_WORDS : GROUP_WORDS / 2;
        const int4* from = src + s * GROUP_WORDS;
        if (lane < words) a = load_streaming(from + lane);
        if (lane + 32 < words) b = load_streaming(from + 32 + lane);
    };
    int4 a, b, next_a, next_b;
    load_group(0, a, b);
    for (int s = 0; s < steps; s++) {
        // The next group's loads go out before this group is computed.
        load_group(s + 1, next_a, next_b);
        ((int4*)buf)[lane] = a;
        if (lane < 2) ((int4*)buf)[32 + lane] = b;
        __syncwarp();
        const int group_blocks = (s < groups) ? GROUP_BLOCKS : GROUP_BLOCKS / 2;
        if (j < group_blocks) {
            const unsigned int* words = (const unsigned int*)buf + word;
            int v[4];
#pragma unroll
            for (int i = 0; i < 4; i++) v[i] = __funnelshift_r(words[i], words[i + 1], shift);
            const float wd = half_bits_to_float(*(const ushort_t*)(buf + 34 * j));
            const int block = s * GROUP_BLOCKS + j;
#pragma unroll
            for (int c = 0; c < NC; c++) {
                const int4 x = *(const int4*)(q + (size_t)c * cols + block * 32 + 16 * h);
                int sum = __dp4a(v[0], x.x, 0);
                sum = __dp4a(v[1], x.y, sum);
                sum = __dp4a(v[2], x.z, sum);
                sum = __dp4a(v[3], x.w, sum);
                acc[c] += wd * d[(size_t)c * blocks + block] * (float)sum;
            }
        }
        __syncwarp();
        a = next_a;
        b = next_b;
    }
    const float b_row = bias != nullptr ? bias[row] : 0.0f;
#pragma unroll
    for (int c = 0; c < NC; c++) {
        float v = acc[c];
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (lane == 0) y[(size_t)c * rows + row] = v + b_row;
    }
}

// The launchable kernels: `<format>_product_<rows>` for 1..=8 rows (cuda_q8.rs picks one).
#define K2_INT8_PRODUCT(NAME, BODY, NC)                                                  \
    extern "C" __global__ void __launch_bounds__(WARPS_PER_BLOCK * 32)                   \
    NAME##_##NC(const unsigned char* __restrict__ w, const signed char* __restrict__ q,  \
                const float* __restrict__ d, const float* __restrict__ bias,             \
                float* __restrict__ y, int rows, int cols, int split)                    \
    {                                                                                    \
        BODY<NC>(w, q, d, bias, y, rows, cols, split);                                   \
    }
#define K2_INT8_PRODUCTS(NAME, BODY)                                                     \
    K2_INT8_PRODUCT(NAME, BODY, 1) K2_INT8_PRODUCT(NAME, BODY, 2)                        \
    K2_INT8_PRODUCT(NAME, BODY, 3) K2_INT8_PRODUCT(NAME, BODY, 4)                        \
    K2_INT8_PRODUCT(NAME, BODY, 5) K2_INT8_PRODUCT(NAME, BODY, 6)                        \
    K2_INT8_PRODUCT(NAME, BODY, 7) K2_INT8_PRODUCT(NAME, BODY, 8)

K2_INT8_PRODUCTS(k2_q8_0_product, q8_0_product)

// The same product for Q4_K weights: super-blocks of 256 values in 144 bytes (f16 d and
// dmin, twelve bytes of 6-bit scales and mins for eight sub-blocks of 32, then 128 bytes
// of 4-bit values; bytes 32·j .. 32·j + 31 hold sub-block 2j in their low nibbles and
// 2j + 1 in their high ones). 144 is a multiple of 16, so every load is an aligned 16-byte
// word and nothing is staged: eight threads share a super-block, each taking 16 bytes of
// values (16 of each of two sub-blocks) and the block's first word (scales) as a broadcast.
// Value = d · scale · q - dmin · min, so each sub-block needs Σ q·x and Σ x. Measured on
// an H100 against variants (32B geometry): taking Σ x from sums the quantizing kernels
// wrote ran 6% slower at 3 rows (more loads and registers); two super-blocks in flight per
// thread instead of one, 3% slower at 1 row.

// Byte k (0..11) of the scales held in three words (selects, not an indexed array: an
// array indexed by a runtime value would live in local memory).
__device__ __forceinline__ int scale_byte(int4 head, int k)
{
    const unsigned word = k < 4 ? head.y : (k < 8 ? head.z : head.w);
    return (word >> (8 * (k & 3))) & 0xFF;
}

// The 6-bit scale and min of sub-block `sub` (ggml's get_scale_min_k4).
__device__ __forceinline__ void q4_k_scale_min(int4 head, int sub, int& sc, int& m)
{
    if (sub < 4) {
        sc = scale_byte(head, sub) & 63;
        m = scale_byte(head, sub + 4) & 63;
    } else {
        const int packed = scale_byte(head, sub + 4);
        sc = (packed & 0x0F) | ((scale_byte(head, sub - 4) >> 6) << 4);
        m = (packed >> 4) | ((scale_byte(head, sub) >> 6) << 4);
    }
}

template <int NC>
__device__ void q4_k_product(
    const unsigned char* __restrict__ w, const signed char* __restrict__ q,
    const float* __restrict__ d, const float* __restrict__ bias, float* __restrict__ y,
    int rows, int cols, int split)
{
    __shared__ float partial[WARPS_PER_BLOCK][NC];
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    // A row is `split` warps' work (1, or 4 for long rows), their threads interleaved over
    // its super-blocks: 4 · split super-blocks per step.
    const int row = blockIdx.x * (WARPS_PER_BLOCK / split) + warp / split;
    const bool active = row < rows;
    const int supers = cols / 256;
    const int blocks = cols / 32;
    const unsigned char* src = w + (size_t)row * supers * 144;
    const int stride = 4 * split;
    const int first = (warp % split) * 4 + (lane >> 3);
    const int part = lane & 7, j = part >> 1, h = part & 1;
    const int sub_lo = 2 * j, sub_hi = 2 * j + 1;
    const int end = active ? supers : 0;

    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; c++) acc[c] = 0.0f;

    auto load = [&](int sb, int4& head, int4& values) {
        head = make_int4(0, 0, 0, 0);
        values = make_int4(0, 0, 0, 0);
        if (sb >= end) return;
        const int4* block = (const int4*)(src + (size_t)sb * 144);
        head = load_streaming(block);
        values = load_streaming(block + 1 + 2 * j + h);
    };
    int4 head, values, next_head, next_values;
    load(first, head, values);
    for (int sb = first; sb < end; sb += stride) {
        load(sb + stride, next_head, next_values);
        const float dw = half_bits_to_float((ushort_t)(head.x & 0xFFFF));
        const float dmin = half_bits_to_float((ushort_t)((unsigned)head.x >> 16));
        int sc_lo, m_lo, sc_hi, m_hi;
        q4_k_scale_min(head, sub_lo, sc_lo, m_lo);
        q4_k_scale_min(head, sub_hi, sc_hi, m_hi);
        const int v[4] = {values.x, values.y, values.z, values.w};
        int lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            lo[i] = v[i] & 0x0F0F0F0F;
            hi[i] = (v[i] >> 4) & 0x0F0F0F0F;
        }
        const int block_lo = sb * 8 + sub_lo, block_hi = sb * 8 + sub_hi;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const signed char* xc = q + (size_t)c * cols;
            const int4 xa = *(const int4*)(xc + block_lo * 32 + 16 * h);
            const int4 xb = *(const int4*)(xc + block_hi * 32 + 16 * h);
            const int ones = 0x01010101;
            int dot_lo = __dp4a(lo[0], xa.x, 0), sum_lo = __dp4a(ones, xa.x, 0);
            dot_lo = __dp4a(lo[1], xa.y, dot_lo), sum_lo = __dp4a(ones, xa.y, sum_lo);
            dot_lo = __dp4a(lo[2], xa.z, dot_lo), sum_lo = __dp4a(ones, xa.z, sum_lo);
            dot_lo = __dp4a(lo[3], xa.w, dot_lo), sum_lo = __dp4a(ones, xa.w, sum_lo);
            int dot_hi = __dp4a(hi[0], xb.x, 0), sum_hi = __dp4a(ones, xb.x, 0);
            dot_hi = __dp4a(hi[1], xb.y, dot_hi), sum_hi = __dp4a(ones, xb.y, sum_hi);
            dot_hi = __dp4a(hi[2], xb.z, dot_hi), sum_hi = __dp4a(ones, xb.z, sum_hi);
            dot_hi = __dp4a(hi[3], xb.w, dot_hi), sum_hi = __dp4a(ones, xb.w, sum_hi);
            const float* dc = d + (size_t)c * blocks;
            acc[c] += dc[block_lo] * (dw * sc_lo * (float)dot_lo - dmin * m_lo * (float)sum_lo)
                    + dc[block_hi] * (dw * sc_hi * (float)dot_hi - dmin * m_hi * (float)sum_hi);
        }
        head = next_head;
        values = next_values;
    }
#pragma unroll
    for (int c = 0; c < NC; c++) {
        float v = acc[c];
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (lane == 0) partial[warp][c] = v;
    }
    __syncthreads();
    if (!active || warp % split != 0 || lane >= NC) return;
    float sum = 0.0f;
    for (int k = 0; k < split; k++) sum += partial[warp + k][lane];
    y[(size_t)lane * rows + row] = sum + (bias != nullptr ? bias[row] : 0.0f);
}

K2_INT8_PRODUCTS(k2_q4_k_product, q4_k_product)
