// The Q4_K product for 1-8 activation rows on the tensor cores (int8 `mma`, sm_80 and up;
// cuda_q8.rs compiles this module only for such GPUs). Same inputs and outputs as
// q4_k_product in cuda_q8.cu.
//
// Why: with dp4a, each activation row costs a Q4_K weight byte two multiply-adds plus two
// more for the activations' sums (the block minimums need Σ x), and its activations are
// loaded once per weight row; at 3 rows that arithmetic, not memory, set the pace (a 32B
// model's gate/up product took 92 µs at 3 rows against 68 at 1 on an H100). Here one
// `mma.m16n8k32` multiplies a sub-block of 32 values of sixteen weight rows by the same
// sub-block of all eight activation rows at once, so extra rows cost almost nothing but
// the scaling of their results.
//
// A warp takes a tile of 16 weight rows (A, 16 × 32) against the activations (B, 32 × 8,
// rows past NC zero); `split` warps of a block share a tile, each taking every split-th
// super-block, and the block adds their sums in a fixed order. Lane (g, t) = (lane / 4,
// lane % 4) holds A's rows g and g + 8, B's column (activation row) g, and gets C for
// weight rows g, g + 8 and activation rows 2t, 2t + 1. The k order inside an mma is free
// as long as A and B use the same one: lane t's eight k slots (4t .. 4t + 3 and
// 16 + 4t .. 16 + 4t + 3) hold values 8t .. 8t + 7 of the sub-block, so its weights are
// one 8-byte load per row and 64 values (the low nibbles of bytes 8t .. 8t + 7 of a
// 32-byte run are sub-block 2j's values, the high nibbles 2j + 1's), and its activations
// one 8-byte load per sub-block. The minimums' term, Σ min · Σ x over the sub-blocks, is a
// second mma whose A holds each row's sub-block minimum in every byte, accumulating in C
// (no per-sub-block multiply-adds for it).
//
// Each column's results are computed by the same operations whatever NC is (the integer
// products are exact), so one row and eight give bit-identical results.

#define TILE_ROWS 16
#define MAX_ACTIVATION_ROWS 8
#define MAX_TENSOR_WARPS 8      // warps per block: 4, or 8 when 8 share a tile (long rows)

// 8 bytes of weights through the read-only path. Kept in L1, unlike the dp4a kernels'
// streaming loads: a lane's 8 bytes of a row are a quarter of a 32-byte run that starts 16
// bytes into a super-block, so half the runs straddle two sectors, and the neighbouring
// run's load finds the shared sector in L1 (without it: 5-10% slower on an H100).
__device__ __forceinline__ int2 load_weights8(const void* p)
{
    int2 v;
    asm volatile("ld.global.nc.v2.s32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "l"(p));
    return v;
}

// c += A · B for A 16 × 32 (a0..a3) and B 32 × 8 int8 (b0, b1), exact int32 sums; A's
// bytes signed, or unsigned where `unsigned_a` (a high nibble in place: 16 × its value;
// known at compile time after inlining). A product alone starts from c = 0: ptxas then
// reads the zero register, the same code as an mma with a constant zero accumulator.
__device__ __forceinline__ void mma_16x8x32_add(
    int (&c)[4], bool unsigned_a, int a0, int a1, int a2, int a3, int b0, int b1)
{
#define K2_MMA_16X8X32(A_TYPE)                                                           \
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32." A_TYPE ".s8.s32 "             \
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"       \
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])                        \
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))
    if (unsigned_a) K2_MMA_16X8X32("u8");
    else K2_MMA_16X8X32("s8");
#undef K2_MMA_16X8X32
}

// One weight row's super-block as this lane holds it: the 16-byte head (f16 d and dmin,
// twelve bytes of 6-bit scales and mins) and bytes 8t .. 8t + 7 of each 32-byte run of
// values.
struct Q4kRowPart {
    int4 head;
    int2 values[4];
};

__device__ __forceinline__ void load_q4_k_part(const unsigned char* super, int t, Q4kRowPart& p)
{
    p.head = __ldg((const int4*)super);
#pragma unroll
    for (int j = 0; j < 4; j++) p.values[j] = load_weights8(super + 16 + 32 * j + 8 * t);
}

// The eight 6-bit scales and mins of a super-block, one per byte: scales of sub-blocks
// 0-3 and 4-7, mins of 0-3 and 4-7 (ggml's get_scale_min_k4, four sub-blocks at a time).
struct Q4kScales {
    unsigned scale_lo, scale_hi, min_lo, min_hi;
};

__device__ __forceinline__ Q4kScales q4_k_scales(int4 head)
{
    const unsigned a = head.y, b = head.z, c = head.w;
    Q4kScales s;
    s.scale_lo = a & 0x3F3F3F3Fu;
    s.min_lo = b & 0x3F3F3F3Fu;
    s.scale_hi = (c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u);
    s.min_hi = ((c >> 4) & 0x0F0F0F0Fu) | ((b >> 2) & 0x30303030u);
    return s;
}

// Byte k of `word` (k known at compile time: one byte permute).
__device__ __forceinline__ int byte_of(unsigned word, int k)
{
    return (int)__byte_perm(word, 0u, 0x4440u | (unsigned)k);
}

// Byte k of `word` in all four bytes (one byte permute): an mma operand that multiplies
// every value of a run by the same number.
__device__ __forceinline__ int byte_in_all(unsigned word, int k)
{
    return (int)__byte_perm(word, 0u, 0x1111u * (unsigned)k);
}

// A tile's results, lane (g, t) holding weight rows g and g + 8 by activation rows 2t and
// 2t + 1 in `acc`: a split tile's warps add theirs in a fixed order through `partial` (the
// block's, one slice per warp), and the tile's first warp writes y[c][row] for c < NC,
// with the bias.
template <int NC>
__device__ __forceinline__ void finish_tile(
    float (&acc)[2][2], float (*partial)[TILE_ROWS][MAX_ACTIVATION_ROWS], bool active,
    int tile, int rows, int split, const float* __restrict__ bias, float* __restrict__ y)
{
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int row_of[2] = {tile * TILE_ROWS + g, tile * TILE_ROWS + g + 8};
    const int col[2] = {2 * t, 2 * t + 1};
    if (split > 1) {
#pragma unroll
        for (int r = 0; r < 2; r++)
#pragma unroll
            for (int k = 0; k < 2; k++) partial[warp][g + 8 * r][col[k]] = acc[r][k];
        __syncthreads();
        if (!active || warp % split != 0) return;
#pragma unroll
        for (int r = 0; r < 2; r++)
#pragma unroll
            for (int k = 0; k < 2; k++) {
                float sum = 0.0f;
                for (int part_warp = 0; part_warp < split; part_warp++)
                    sum += partial[warp + part_warp][g + 8 * r][col[k]];
                acc[r][k] = sum;
            }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (row_of[r] >= rows) continue;
        const float b = bias != nullptr ? bias[row_of[r]] : 0.0f;
#pragma unroll
        for (int k = 0; k < 2; k++)
            if (col[k] < NC) y[(size_t)col[k] * rows + row_of[r]] = acc[r][k] + b;
    }
}

// x: [rows][cols] f32 → q: [rows][cols] int8 and d: [rows][cols / 256] f32, one scale per
// super-block of 256 values (ggml's Q8_K, the form the CPU's k-quant products take their
// activations in), so the product sums whole super-blocks in integers. One warp per
// super-block, eight values per lane.
extern "C" __global__ void k2_quantize_q8_k(
    const float* __restrict__ x, signed char* __restrict__ q, float* __restrict__ d,
    int supers)
{
    const int super = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (super >= supers) return;
    const int lane = threadIdx.x & 31;
    const size_t at = (size_t)super * 256 + 8 * lane;
    const float4 a = *(const float4*)(x + at), b = *(const float4*)(x + at + 4);
    const float v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; i++) amax = fmaxf(amax, fabsf(v[i]));
    for (int off = 16; off > 0; off >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    const float scale = amax / 127.0f;
    unsigned packed[2] = {0u, 0u};
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int value = scale > 0.0f ? (int)roundf(v[i] / scale) : 0;
        packed[i / 4] |= (unsigned)(value & 0xFF) << (8 * (i % 4));
    }
    *(uint2*)(q + at) = make_uint2(packed[0], packed[1]);
    if (lane == 0) d[super] = scale;
}

template <int NC>
__device__ void q4_k_tensor_product(
    const unsigned char* __restrict__ w, const signed char* __restrict__ q,
    const float* __restrict__ d, const float* __restrict__ bias, float* __restrict__ y,
    int rows, int cols, int split)
{
    __shared__ float partial[MAX_TENSOR_WARPS][TILE_ROWS][MAX_ACTIVATION_ROWS];
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int tile = blockIdx.x * (blockDim.x / 32 / split) + warp / split;
    const bool active = tile * TILE_ROWS < rows;
    if (split == 1 && !active) return;
    const int supers = cols / 256;
    // Rows past the last (a partial tile) read the last row and are not written.
    const int row_of[2] = {tile * TILE_ROWS + g, tile * TILE_ROWS + g + 8};
    const unsigned char* src[2];
#pragma unroll
    for (int r = 0; r < 2; r++)
        src[r] = w + (size_t)min(row_of[r], rows - 1) * supers * 144;
    // This lane's activation row (B's column) and the two whose results it gets. Columns
    // past NC repeat the last row: a column of C depends only on its column of B, and
    // those results are not written (no lane-dependent branches in the loop).
    const signed char* x_row = q + (size_t)min(g, NC - 1) * cols + 8 * t;
    const int col[2] = {2 * t, 2 * t + 1};
    const float* d_col[2] = {d + (size_t)min(col[0], NC - 1) * supers,
                             d + (size_t)min(col[1], NC - 1) * supers};

    float acc[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};   // [weight row g, g + 8][col]
    const int end = active ? supers : 0;
    auto load = [&](int sb, Q4kRowPart (&p)[2]) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            if (sb < end) {
                load_q4_k_part(src[r] + (size_t)sb * 144, t, p[r]);
            } else {
                p[r].head = make_int4(0, 0, 0, 0);
#pragma unroll
                for (int j = 0; j < 4; j++) p[r].values[j] = make_int2(0, 0);
            }
        }
    };
    Q4kRowPart part[2], next[2];
    load(warp % split, part);
    for (int sb = warp % split; sb < end; sb += split) {
        // The next super-block's loads go out before this one is computed.
        load(sb + split, next);
        Q4kScales scales[2];
#pragma unroll
        for (int r = 0; r < 2; r++) scales[r] = q4_k_scales(part[r].head);
        // Σ over sub-blocks of scale · Σ q·x, exact: at most 8 · 63 · 32 · 15 · 127 in
        // magnitude (16 times that for the odd sub-blocks, whose high nibbles are read in
        // place as unsigned bytes, one shift the fewer per value word; summed apart and
        // divided at the end, exactly, being a sum of multiples of 16).
        int dots[2][2] = {{0, 0}, {0, 0}}, dots16[2][2] = {{0, 0}, {0, 0}};
        // Σ over sub-blocks of min · Σ x, in C's layout: an mma whose A holds each row's
        // sub-block minimum in every byte adds min · Σ x for all rows and columns at once.
        // Two sums (even and odd sub-blocks), so that no mma waits on the one before it.
        int mins[2][4] = {};
#pragma unroll
        for (int s = 0; s < 8; s++) {
            const int j = s >> 1;
            const unsigned nibbles = (s & 1) ? 0xF0F0F0F0u : 0x0F0F0F0Fu;
            const int a0 = part[0].values[j].x & nibbles, a1 = part[1].values[j].x & nibbles;
            const int a2 = part[0].values[j].y & nibbles, a3 = part[1].values[j].y & nibbles;
            const int2 x = *(const int2*)(x_row + sb * 256 + 32 * s);
            int c[4] = {0, 0, 0, 0};
            mma_16x8x32_add(c, (s & 1) != 0, a0, a1, a2, a3, x.x, x.y);
            const int min0 = byte_in_all(s < 4 ? scales[0].min_lo : scales[0].min_hi, s & 3);
            const int min1 = byte_in_all(s < 4 ? scales[1].min_lo : scales[1].min_hi, s & 3);
            mma_16x8x32_add(mins[s & 1], false, min0, min1, min0, min1, x.x, x.y);
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int sc = byte_of(s < 4 ? scales[r].scale_lo : scales[r].scale_hi, s & 3);
#pragma unroll
                for (int k = 0; k < 2; k++) {
                    if (NC == 1 && k == 1) continue;   // a column no lane writes
                    if (s & 1) dots16[r][k] += sc * c[2 * r + k];
                    else dots[r][k] += sc * c[2 * r + k];
                }
            }
        }
        float dx[2];
#pragma unroll
        for (int k = 0; k < 2; k++) dx[k] = d_col[k][sb];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const float dw = half_bits_to_float((ushort_t)(part[r].head.x & 0xFFFF));
            const float dmin = half_bits_to_float((ushort_t)((unsigned)part[r].head.x >> 16));
#pragma unroll
            for (int k = 0; k < 2; k++) {
                const int dot = dots[r][k] + (dots16[r][k] >> 4);
                const int min_dot = mins[0][2 * r + k] + mins[1][2 * r + k];
                acc[r][k] += dx[k] * (dw * (float)dot - dmin * (float)min_dot);
            }
        }
#pragma unroll
        for (int r = 0; r < 2; r++) part[r] = next[r];
    }

    finish_tile<NC>(acc, partial, active, tile, rows, split, bias, y);
}

// The launchable kernels, `<format>_tensor_product_<rows>`; BODY##_max_warps bounds the
// block (the warps that may share a tile).
#define K2_TENSOR_PRODUCT(NAME, BODY, NC)                                                \
    extern "C" __global__ void __launch_bounds__(BODY##_max_warps * 32)                  \
    NAME##_##NC(const unsigned char* __restrict__ w, const signed char* __restrict__ q,  \
                const float* __restrict__ d, const float* __restrict__ bias,             \
                float* __restrict__ y, int rows, int cols, int split)                    \
    {                                                                                    \
        BODY<NC>(w, q, d, bias, y, rows, cols, split);                                   \
    }
constexpr int q4_k_tensor_product_max_warps = MAX_TENSOR_WARPS;
K2_FOR_ROWS(K2_TENSOR_PRODUCT, k2_q4_k_tensor_product, q4_k_tensor_product)
