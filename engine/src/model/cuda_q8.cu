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
// blocks per thread in 32-block chunks took more registers and ran 14% slower; two groups
// in flight instead of one, 7% slower. A row may be split over `split` warps of a block
// (cuda_q8.rs picks it per matrix shape): each takes every split-th group, and the block
// adds their sums (`finish_row`). The `dp4a` chains are written out in each kernel: moved
// into a shared helper, they changed ptxas' register allocation (the 3-row Q8_0 kernel from
// 40 to 48 registers, fewer warps per multiprocessor).

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

// Row `row`'s sums `acc` of this warp (one of `split` sharing the row) summed over its
// lanes and the row's warps, plus the bias, written to y[c][row]. The warps' sums are
// added in a fixed order, so the result does not depend on NC. With one warp per row,
// a warp past the last row has already returned.
template <int NC>
__device__ __forceinline__ void finish_row(
    float (&acc)[NC], float (&partial)[WARPS_PER_BLOCK][NC], bool active, int row, int rows,
    int split, const float* __restrict__ bias, float* __restrict__ y)
{
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    if (split == 1) {
        const float b_row = bias != nullptr ? bias[row] : 0.0f;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            float v = acc[c];
            for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
            if (lane == 0) y[(size_t)c * rows + row] = v + b_row;
        }
        return;
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

// y[c][row] = Σ_k w[row][k] · x[c][k] (+ bias[row]) for c < NC, with x given as int8 q and
// block scales d (k2_quantize_q8). `split` warps per weight row (1, 2 or 4). Each column
// is computed by the same sequence of operations whatever NC is, so 1 row and 8 rows give
// bit-identical results.
template <int NC>
__device__ void q8_0_product(
    const unsigned char* __restrict__ w, const signed char* __restrict__ q,
    const float* __restrict__ d, const float* __restrict__ bias, float* __restrict__ y,
    int rows, int cols, int split)
{
    __shared__ __align__(16) unsigned char stage[WARPS_PER_BLOCK][GROUP_PAD_BYTES];
    __shared__ float partial[WARPS_PER_BLOCK][NC];
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int row = blockIdx.x * (WARPS_PER_BLOCK / split) + warp / split;
    const bool active = row < rows;
    if (split == 1 && !active) return;
    const int blocks = cols / 32;                  // the caller ensures blocks % 8 == 0
    const int groups = blocks / GROUP_BLOCKS;
    const bool half_group = (blocks % GROUP_BLOCKS) != 0;
    const int4* src = (const int4*)(w + (size_t)(active ? row : 0) * blocks * 34);
    unsigned char* buf = stage[warp];

    // This thread's half block within a group: block `j`, values 16·h .. 16·h + 15.
    const int j = lane >> 1, h = lane & 1;
    const int value_byte = 34 * j + 2 + 16 * h;
    const int word = value_byte >> 2, shift = (value_byte & 3) * 8;

    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; c++) acc[c] = 0.0f;

    const int steps = active ? groups + (half_group ? 1 : 0) : 0;
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
    const int first = warp % split;
    load_group(first, a, b);
    for (int s = first; s < steps; s += split) {
        // The next group's loads go out before this group is computed.
        load_group(s + split, next_a, next_b);
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
    finish_row<NC>(acc, partial, active, row, rows, split, bias, y);
}

K2_FOR_ROWS(K2_SPLIT_PRODUCT, k2_q8_0_product, q8_0_product)
K2_FOR_ROWS(K2_ONE_WARP_PRODUCT, k2_q8_0_product, q8_0_product)

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
    // A row is `split` warps' work, their threads interleaved over its super-blocks:
    // 4 · split super-blocks per step.
    const int row = blockIdx.x * (WARPS_PER_BLOCK / split) + warp / split;
    const bool active = row < rows;
    if (split == 1 && !active) return;
    const int supers = cols / 256;
    const int blocks = cols / 32;
    const unsigned char* src = w + (size_t)(active ? row : 0) * supers * 144;
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
    finish_row<NC>(acc, partial, active, row, rows, split, bias, y);
}

K2_FOR_ROWS(K2_SPLIT_PRODUCT, k2_q4_k_product, q4_k_product)

// The same product for Q6_K weights: super-blocks of 256 values in 210 bytes (128 bytes of
// low 4 bits, 64 of high 2 bits, sixteen int8 scales, one per 16 values, and an f16 d).
// Value = d · scale · (q - 32), q the 6-bit number. Within each half of 128 values, byte l
// (0..31) of the half's 64 low-bit bytes holds values l (low nibble) and 64 + l (high);
// byte 32 + l values 32 + l and 96 + l; byte l of its 32 high-bit bytes holds their two
// top bits, in bit pairs 0, 2, 4 and 6 for values l, 32 + l, 64 + l and 96 + l.
//
// 210 is not a multiple of 16 (rows start 2-byte aligned), so like Q8_0 a warp streams
// its row through shared memory, eight super-blocks (1,680 bytes, a multiple of 16) at a
// time with aligned 16-byte loads from the 16-byte word holding the row's first byte.
// Sixteen threads share a super-block, each taking 16 values of one sub-block of 32, so
// that the sixteen read the super-block's 256 activations as one contiguous run: with four
// threads per super-block, each taking 64 values, a warp's activation loads touched 16
// cache lines each and the L1 bound the product at 3 rows (1.36 TB/s on the output
// matrix, against 1.55 through candle's kernels).
#define Q6K_BYTES 210
#define Q6K_GROUP 8             // super-blocks per group
#define Q6K_GROUP_WORDS 105     // 16-byte words per group (1,680 bytes)
#define Q6K_STAGE_WORDS 107     // a group's words from an unaligned start, and a word to spare

// Sixteen bytes at shared-memory byte offset `at` (even) as four words, by funnel shifts.
__device__ __forceinline__ void shared_bytes16(const unsigned char* buf, int at, int (&out)[4])
{
    const unsigned int* words = (const unsigned int*)buf + (at >> 2);
    const int shift = (at & 3) * 8;
#pragma unroll
    for (int i = 0; i < 4; i++) out[i] = __funnelshift_r(words[i], words[i + 1], shift);
}

template <int NC>
__device__ void q6_k_product(
    const unsigned char* __restrict__ w, const signed char* __restrict__ q,
    const float* __restrict__ d, const float* __restrict__ bias, float* __restrict__ y,
    int rows, int cols, int split)
{
    __shared__ __align__(16) unsigned char stage[WARPS_PER_BLOCK][Q6K_STAGE_WORDS * 16];
    __shared__ float partial[WARPS_PER_BLOCK][NC];
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int row = blockIdx.x * (WARPS_PER_BLOCK / split) + warp / split;
    const bool active = row < rows;
    if (split == 1 && !active) return;
    const int supers = cols / 256;
    const int blocks = cols / 32;
    const size_t row_start = (size_t)(active ? row : 0) * supers * Q6K_BYTES;
    const int skew = (int)(row_start & 15);
    const int4* src = (const int4*)(w + (row_start - skew));
    unsigned char* buf = stage[warp];

    // This thread's part of a super-block: values 16·t .. 16·t + 15 (t = 8n + 2k + h: half
    // n, sub-block k of the half, values l = 16·h .. 16·h + 15 of it), in super-block
    // 2·pass + (lane >> 4) of a group on pass 0..3.
    const int t = lane & 15;
    const int n = t >> 3, k = (t >> 1) & 3, h = t & 1;
    // Where its bits are: low bits in ql[64n + 32(k & 1) + l], the low or high nibble;
    // high bits in qh[32n + l], bit pair k; its scale is scales[8n + 2k + h].
    const int low_at = 64 * n + 32 * (k & 1) + 16 * h, low_shift = 4 * (k >> 1);
    const int high_at = 128 + 32 * n + 16 * h, high_shift = 2 * k;
    const int scale_at = 192 + 8 * n + 2 * k + h;

    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; c++) acc[c] = 0.0f;

    const int steps = active ? (supers + Q6K_GROUP - 1) / Q6K_GROUP : 0;
    auto group_supers = [&](int s) { return min(Q6K_GROUP, supers - s * Q6K_GROUP); };
    auto load_group = [&](int s, int4 (&r)[4]) {
#pragma unroll
        for (int i = 0; i < 4; i++) r[i] = make_int4(0, 0, 0, 0);
        if (s >= steps) return;
        const int words = (skew + group_supers(s) * Q6K_BYTES + 15) >> 4;
        const int4* from = src + s * Q6K_GROUP_WORDS;
#pragma unroll
        for (int i = 0; i < 4; i++)
            if (lane + 32 * i < words) r[i] = load_streaming(from + lane + 32 * i);
    };
    int4 r[4], next[4];
    const int first = warp % split;
    load_group(first, r);
    for (int s = first; s < steps; s += split) {
        // The next group's loads go out before this group is computed.
        load_group(s + split, next);
#pragma unroll
        for (int i = 0; i < 4; i++)
            if (lane + 32 * i < Q6K_STAGE_WORDS) ((int4*)buf)[lane + 32 * i] = r[i];
        __syncwarp();
        const int supers_here = group_supers(s);
#pragma unroll 1
        for (int pass = 0; pass < Q6K_GROUP / 2; pass++) {
            const int j = 2 * pass + (lane >> 4);
            if (j >= supers_here) break;
            const int at = skew + Q6K_BYTES * j;
            int low[4], high[4], v[4];
            shared_bytes16(buf, at + low_at, low);
            shared_bytes16(buf, at + high_at, high);
#pragma unroll
            for (int i = 0; i < 4; i++)
                v[i] = __vsub4(((low[i] >> low_shift) & 0x0F0F0F0F)
                                   | (((high[i] >> high_shift) & 0x03030303) << 4),
                               0x20202020);
            const float wd = half_bits_to_float(*(const ushort_t*)(buf + at + 208))
                           * (float)((const signed char*)buf)[at + scale_at];
            const int super = s * Q6K_GROUP + j;
#pragma unroll
            for (int c = 0; c < NC; c++) {
                const int4 x = *(const int4*)(q + (size_t)c * cols + super * 256 + 16 * t);
                int dot = __dp4a(v[0], x.x, 0);
                dot = __dp4a(v[1], x.y, dot);
                dot = __dp4a(v[2], x.z, dot);
                dot = __dp4a(v[3], x.w, dot);
                acc[c] += wd * d[(size_t)c * blocks + super * 8 + (t >> 1)] * (float)dot;
            }
        }
        __syncwarp();
#pragma unroll
        for (int i = 0; i < 4; i++) r[i] = next[i];
    }
    finish_row<NC>(acc, partial, active, row, rows, split, bias, y);
}

K2_FOR_ROWS(K2_SPLIT_PRODUCT, k2_q6_k_product, q6_k_product)
K2_FOR_ROWS(K2_ONE_WARP_PRODUCT, k2_q6_k_product, q6_k_product)
