/* device.h - which devices this build can run on. */
#ifndef TK_DEVICE_H
#define TK_DEVICE_H

#ifdef __cplusplus
extern "C" {
#endif

/* With CUDA built in: the versions of the CUDA runtime, cuBLAS, cuDNN and
 * NCCL this program is linked with ("CUDA 13.0, cuBLAS 13.0.0, ..."), read
 * from the libraries themselves; no GPU is needed.  NULL otherwise. */
const char *tk_cuda_versions(void);

#ifdef __cplusplus
}
#endif
#endif
