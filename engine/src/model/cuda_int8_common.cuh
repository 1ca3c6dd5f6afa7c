// What the int8 product modules share (cuda_q8.cu, with dp4a, and cuda_q4_k_tensor.cu, on
// the tensor cores): f16 scales, streaming loads that bypass L1, and the macros that
// instantiate a product for 1..=8 activation rows.

typedef unsigned short ushort_t;

#define WARPS_PER_BLOCK 4

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

// The launchable kernels: `<format>_product_<rows>` for 1..=8 rows, with `split` warps per
// weight row (1, 2 or 4), and for Q8_0 and Q6_K also `<format>_product_<rows>_one` with
// one warp per row compiled as a constant. cuda_q8.rs picks one. Register allocation
// decides which is faster: the Q8_0 general kernel took 46 registers for one row where
// the constant one takes 40 (4% slower at 1 row on the H100), while the Q4_K general
// kernel takes fewer than its constant twin would.
#define K2_SPLIT_PRODUCT(NAME, BODY, NC)                                                 \
    extern "C" __global__ void __launch_bounds__(WARPS_PER_BLOCK * 32)                   \
    NAME##_##NC(const unsigned char* __restrict__ w, const signed char* __restrict__ q,  \
                const float* __restrict__ d, const float* __restrict__ bias,             \
                float* __restrict__ y, int rows, int cols, int split)                    \
    {                                                                                    \
        BODY<NC>(w, q, d, bias, y, rows, cols, split);                                   \
    }
#define K2_ONE_WARP_PRODUCT(NAME, BODY, NC)                                              \
    extern "C" __global__ void __launch_bounds__(WARPS_PER_BLOCK * 32)                   \
    NAME##_##NC##_one(const unsigned char* __restrict__ w,                               \
                      const signed char* __restrict__ q, const float* __restrict__ d,    \
                      const float* __restrict__ bias, float* __restrict__ y, int rows,   \
                      int cols, int split)                                               \
    {                                                                                    \
        BODY<NC>(w, q, d, bias, y, rows, cols, 1);                                       \
    }
#define K2_FOR_ROWS(KIND, NAME, BODY)                                                    \
    KIND(NAME, BODY, 1) KIND(NAME, BODY, 2) KIND(NAME, BODY, 3) KIND(NAME, BODY, 4)      \
    KIND(NAME, BODY, 5) KIND(NAME, BODY, 6) KIND(NAME, BODY, 7) KIND(NAME, BODY, 8)

