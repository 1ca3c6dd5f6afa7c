// Σ of `v` over the block (every thread gets it): warps add up with shuffles, then the
// first warp adds up the warps' sums the same way.
__device__ __forceinline__ float k2_block_sum(float v)
{
    __shared__ float warp_sums[32];
    __shared__ float total;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float s = lane < (int)(blockDim.x + 31) / 32 ? warp_sums[lane] : 0.0f;
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (lane == 0) total = s;
    }
    __syncthreads();
    return total;
}
