// image.cu - u8 HWC pixels to the normalised float CHW tensor (image.h),
// with the CPU's float operations: the same bits.
#include "kernels/cuda/common.cuh"

namespace {

struct stats {
	float mean[3], std[3];
};

__global__ void normalize(float *out, const uint8_t *in, stats st, size_t hw)
{
	FOR_N(i, hw * 3)
	{
		size_t px = i / 3;
		int c = i % 3;
		float v = __fdiv_rn((float)in[i], 255.0f);
		out[c * hw + px] = __fdiv_rn(__fsub_rn(v, st.mean[c]), st.std[c]);
	}
}

} // namespace

extern "C" void image_normalize_forward_cuda(float *out, const uint8_t *in,
					     const float *mean, const float *std,
					     int H, int W, tk_stream s)
{
	size_t hw = (size_t)H * W;
	if (!hw)
		return;
	stats st;
	for (int c = 0; c < 3; c++) {
		st.mean[c] = mean[c];
		st.std[c] = std[c];
	}
	normalize<<<tk::blocks(hw * 3, 256), 256, 0, s>>>(out, in, st, hw);
	LAUNCH_CHECK();
}
