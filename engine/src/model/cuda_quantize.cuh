// Activations quantized to int8 in blocks of 32 values, the input of the int8 products
// (cuda_q8.cu). Shared by the kernel that only quantizes and by the kernels that quantize
// what they produce (cuda_ops.rs), so both give the same bits.
//
// Each lane of a warp holds one value `v` of the block that the warp's 32 lanes hold
// together, element `i` of the output (`i` a multiple of 32 on lane 0): writes q[i] and,
// from lane 0, the block's scale d[i / 32], with v ≈ q[i] · d[i / 32].
__device__ __forceinline__ void k2_quantize_lane(
    float v, signed char* __restrict__ q, float* __restrict__ d, size_t i)
{
    float amax = fabsf(v);
    for (int off = 16; off > 0; off >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    const float scale = amax / 127.0f;
    q[i] = (signed char)(scale > 0.0f ? roundf(v / scale) : 0.0f);
    if ((threadIdx.x & 31) == 0) d[i / 32] = scale;
}

// The same with one scale per block of 256 values (ggml's Q8_K, what the tensor-core k-quant
// product reads, cuda_q4_k_tensor.cu), the block's threads cooperating: eight consecutive
// warps of it hold a block's 256 values, element `i` on the thread `i` mod 256 of them.
// Every thread of the block must call this the same number of times (it synchronizes the
// block), `call` counting the calls from 0; `valid` is false for a thread without a value
// this time. Gives the same bits as k2_quantize_q8_k.
__device__ __forceinline__ void k2_quantize_block256(
    float v, bool valid, signed char* __restrict__ q, float* __restrict__ d, size_t i, int call)
{
    // Calls alternate between two arrays: a call's barrier also tells that every thread has
    // read the array of the call before it, which the next call writes again.
    __shared__ float warp_max[2][32];
    const int warp = threadIdx.x >> 5;
    float amax = valid ? fabsf(v) : 0.0f;
    for (int off = 16; off > 0; off >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    if ((threadIdx.x & 31) == 0) warp_max[call & 1][warp] = amax;
    __syncthreads();
    const int first = warp & ~7;
#pragma unroll
    for (int w = 0; w < 8; w++) amax = fmaxf(amax, warp_max[call & 1][first + w]);
    const float scale = amax / 127.0f;
    if (!valid) return;
    q[i] = (signed char)(scale > 0.0f ? roundf(v / scale) : 0.0f);
    if ((threadIdx.x & 255) == 0) d[i / 256] = scale;
}

// Quantizes for an int8 product in blocks of BLOCK_VALUES (32 or 256; see above). The
// 256 form synchronizes the block: call it from every thread, `valid` or not, counting
// the calls in `call`.
template <int BLOCK_VALUES>
__device__ __forceinline__ void k2_quantize_for_product(
    float v, bool valid, signed char* __restrict__ q, float* __restrict__ d, size_t i, int call)
{
    if (BLOCK_VALUES == 256) k2_quantize_block256(v, valid, q, d, i, call);
    else if (valid) k2_quantize_lane(v, q, d, i);
}
