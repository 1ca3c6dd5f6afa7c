// The Q6_K product on the tensor cores, compiled after cuda_q4_k_tensor.cu (same module,
// same tiles, activations and results; see there). A Q6_K super-block (210 bytes) holds
// 256 values in sixteen groups of 16, each with its own int8 scale, so the products are
// `mma.m16n8k16`, one per group, and a super-block's sums stay integers until its f16 d.
//
// Value 128n + 32m + l (half n, quarter m, l < 32) is the nibble m / 2 of ql[64n + 32(m % 2)
// + l] with the bit pair m of qh[32n + l] above it, minus 32; its group is 8n + 2m + l / 16.
// Lane t's four k slots of a group hold l = 16b + 4t .. 16b + 4t + 3 (b = l / 16), so for
// each (n, b) three words (two of ql, one of qh) give the lane its part of four groups.
//
// Rows start 2-byte aligned (210 is not a multiple of 4), so each warp copies its sixteen
// rows' next super-blocks into shared memory with cp.async (aligned 16-byte words from the
// word holding each one's first byte; no registers held while they fly) and reads words
// out with funnel shifts. Σ scale · (q - 32)·x = Σ scale · q·x - 32 Σ scale · Σ x, the
// second sum from mmas whose A holds the scales (as Q4_K's minimums). At most four warps
// share a tile (two buffers of 3.5 KB per warp).

#define Q6K_SUPER_BYTES 210
#define Q6K_STAGE_WORDS 14      // 16-byte words holding a super-block from any even offset
#define Q6K_LOAD_SLOTS 7        // 16 rows × 14 words over 32 lanes
#define Q6K_TILE_WORDS (TILE_ROWS * Q6K_STAGE_WORDS * 4)   // 4-byte words of one staged tile
#define Q6K_MAX_WARPS 4

// c += A · B for A 16 × 16 (a0, a1) and B 16 × 8 int8 (b0), exact int32 sums (a product
// alone starts from c = 0, as mma_16x8x32_add's).
__device__ __forceinline__ void mma_16x8x16_add(int (&c)[4], int a0, int a1, int b0)
{
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 "
        "{%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(b0));
}

// 16 bytes from global to shared memory without passing through registers; `bytes` 0
// fills them with zeros and reads nothing.
__device__ __forceinline__ void copy16_async(void* shared, const void* global, int bytes)
{
    const unsigned to = (unsigned)__cvta_generic_to_shared(shared);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(to), "l"(global),
                 "r"(bytes));
}

// Byte k of `word` as a signed number (k known at compile time: one byte permute, whose
// selector's top bit replicates the byte's sign; __byte_perm ignores that bit).
__device__ __forceinline__ int signed_byte_of(unsigned word, int k)
{
    const unsigned sign = 8u | (unsigned)k;
    const unsigned selector = (unsigned)k | (sign << 4) | (sign << 8) | (sign << 12);
    int out;
    asm("prmt.b32 %0, %1, 0, %2;" : "=r"(out) : "r"(word), "r"(selector));
    return out;
}

// The 6-bit values of quarter m for one row part: nibble m / 2 of the ql word of m % 2,
// the bit pair m of the qh word above it.
__device__ __forceinline__ int q6_k_values(unsigned ql_even, unsigned ql_odd, unsigned qh, int m)
{
    const unsigned low = ((m & 1) ? ql_odd : ql_even) >> (4 * (m >> 1));
    return (int)((low & 0x0F0F0F0Fu) | (((qh >> (2 * m)) & 0x03030303u) << 4));
}

template <int NC>
__device__ void q6_k_tensor_product(
    const unsigned char* __restrict__ w, const signed char* __restrict__ q,
    const float* __restrict__ d, const float* __restrict__ bias, float* __restrict__ y,
    int rows, int cols, int split)
{
    // Two staged tiles per warp, and a spare word: a read may take 4 bytes past a row.
    __shared__ __align__(16) unsigned stage[Q6K_MAX_WARPS][2 * Q6K_TILE_WORDS + 4];
    __shared__ float partial[Q6K_MAX_WARPS][TILE_ROWS][MAX_ACTIVATION_ROWS];
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int tile = blockIdx.x * (blockDim.x / 32 / split) + warp / split;
    const bool active = tile * TILE_ROWS < rows;
    if (split == 1 && !active) return;
    const int supers = cols / 256;
    // Rows past the last (a partial tile) read the last row and are not written.
    auto start_of = [&](int tile_row, int sb) {
        const int row = min(tile * TILE_ROWS + tile_row, rows - 1);
        return ((size_t)row * supers + sb) * Q6K_SUPER_BYTES;
    };
    const signed char* x_row = q + (size_t)min(g, NC - 1) * cols + 4 * t;
    const int col[2] = {2 * t, 2 * t + 1};
    const float* d_col[2] = {d + (size_t)min(col[0], NC - 1) * supers,
                             d + (size_t)min(col[1], NC - 1) * supers};
    unsigned* words = stage[warp];

    float acc[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
    const int end = active ? supers : 0;
    // Slot lane + 32i of a copy: word slot % 14 of tile row slot / 14, into buffer `buffer`.
    auto copy = [&](int sb, int buffer) {
        if (sb < end) {
#pragma unroll
            for (int i = 0; i < Q6K_LOAD_SLOTS; i++) {
                const int slot = lane + 32 * i, tile_row = slot / Q6K_STAGE_WORDS;
                const int word = slot - tile_row * Q6K_STAGE_WORDS;
                const size_t start = start_of(tile_row, sb);
                const int skew = (int)(start & 15);
                const int bytes = 16 * word < skew + Q6K_SUPER_BYTES ? 16 : 0;
                copy16_async(words + buffer * Q6K_TILE_WORDS + 4 * slot,
                             w + (start - skew) + 16 * (bytes ? word : 0), bytes);
            }
        }
        asm volatile("cp.async.commit_group;");
    };
    int buffer = 0;
    copy(warp % split, 0);
    for (int sb = warp % split; sb < end; sb += split) {
        // The next super-block's copies go out before this one is computed.
        copy(sb + split, buffer ^ 1);
        asm volatile("cp.async.wait_group 1;");
        __syncwarp();
        // Where each of this lane's rows starts in the buffer (in words), and the shift
        // that takes a word from an even byte offset.
        int base[2] = {0, 0};
        unsigned shift[2] = {0u, 0u};
        float dw[2];
        unsigned scales[2][4];
        auto word_at = [&](int r, int byte) {
            const int i = base[r] + (byte >> 2);
            return __funnelshift_r(words[i], words[i + 1], shift[r]);
        };
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int tile_row = g + 8 * r;
            const int skew = (int)(start_of(tile_row, sb) & 15);
            base[r] = buffer * Q6K_TILE_WORDS + tile_row * Q6K_STAGE_WORDS * 4 + (skew >> 2);
            shift[r] = (unsigned)(skew & 3) * 8;
            dw[r] = half_bits_to_float((ushort_t)(word_at(r, 208) & 0xFFFF));
#pragma unroll
            for (int k = 0; k < 4; k++) scales[r][k] = word_at(r, 192 + 4 * k);
        }
        int dots[2][2] = {{0, 0}, {0, 0}};
        // Σ over groups of scale · Σ x, in C's layout: an mma whose A holds each row's
        // group scale in every byte adds it for all rows and columns at once.
        // Four sums (one per quarter m), so that no mma waits on the one before it: with
        // one, the 32B model's down projection took 83 µs at 3 rows on an H100, with four 58.
        int offsets[4][4] = {};
#pragma unroll
        for (int n = 0; n < 2; n++) {
#pragma unroll
            for (int b = 0; b < 2; b++) {
                unsigned ql_even[2], ql_odd[2], qh[2];
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    ql_even[r] = word_at(r, 64 * n + 16 * b + 4 * t);
                    ql_odd[r] = word_at(r, 64 * n + 32 + 16 * b + 4 * t);
                    qh[r] = word_at(r, 128 + 32 * n + 16 * b + 4 * t);
                }
#pragma unroll
                for (int m = 0; m < 4; m++) {
                    const int group = 8 * n + 2 * m + b;
                    const int x = *(const int*)(x_row + sb * 256 + 16 * group);
                    int c[4] = {0, 0, 0, 0};
                    mma_16x8x16_add(c, q6_k_values(ql_even[0], ql_odd[0], qh[0], m),
                                q6_k_values(ql_even[1], ql_odd[1], qh[1], m), x);
                    mma_16x8x16_add(offsets[m], byte_in_all(scales[0][group >> 2], group & 3),
                                    byte_in_all(scales[1][group >> 2], group & 3), x);
#pragma unroll
                    for (int r = 0; r < 2; r++) {
                        const int sc = signed_byte_of(scales[r][group >> 2], group & 3);
#pragma unroll
                        for (int k = 0; k < 2; k++) {
                            if (NC == 1 && k == 1) continue;   // a column no lane writes
                            dots[r][k] += sc * c[2 * r + k];
                        }
                    }
                }
            }
        }
#pragma unroll
        for (int r = 0; r < 2; r++)
#pragma unroll
            for (int k = 0; k < 2; k++) {
                const int i = 2 * r + k;
                const int offset = offsets[0][i] + offsets[1][i] + offsets[2][i] + offsets[3][i];
                dots[r][k] -= 32 * offset;
            }
        float dx[2];
#pragma unroll
        for (int k = 0; k < 2; k++) dx[k] = d_col[k][sb];
#pragma unroll
        for (int r = 0; r < 2; r++)
#pragma unroll
            for (int k = 0; k < 2; k++) acc[r][k] += dx[k] * (dw[r] * (float)dots[r][k]);
        // Every lane is done with this buffer before the copy two steps on refills it.
        __syncwarp();
        buffer ^= 1;
    }
    asm volatile("cp.async.wait_group 0;");

    finish_tile<NC>(acc, partial, active, tile, rows, split, bias, y);
}

constexpr int q6_k_tensor_product_max_warps = Q6K_MAX_WARPS;
K2_FOR_ROWS(K2_TENSOR_PRODUCT, k2_q6_k_tensor_product, q6_k_tensor_product)
