// cuda_bf16.h (tk's CUDA emulator) - bfloat16 as the GPU rounds it: float
// to bf16 to nearest even (NaN stays NaN), bf16 to float exactly.
#ifndef TK_EMU_CUDA_BF16_H
#define TK_EMU_CUDA_BF16_H

#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
	uint16_t x;
};

inline __nv_bfloat16 __float2bfloat16(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	__nv_bfloat16 b;
	if ((u & 0x7fffffffu) > 0x7f800000u)
		b.x = (uint16_t)((u >> 16) | 0x40); // quiet NaN
	else
		b.x = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
	return b;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
	return __float2bfloat16(f);
}
inline float __bfloat162float(__nv_bfloat16 b)
{
	uint32_t u = (uint32_t)b.x << 16;
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

#endif
