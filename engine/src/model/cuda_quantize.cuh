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
