// library_types.h (tk's CUDA emulator) - the data types the CUDA libraries
// share.
#ifndef TK_EMU_LIBRARY_TYPES_H
#define TK_EMU_LIBRARY_TYPES_H

typedef enum cudaDataType_t {
	CUDA_R_16F = 2,
	CUDA_R_32F = 0,
	CUDA_R_64F = 1,
	CUDA_R_16BF = 14,
	CUDA_R_8I = 3,
	CUDA_R_32I = 10,
} cudaDataType_t;
typedef cudaDataType_t cudaDataType;

typedef enum libraryPropertyType_t {
	MAJOR_VERSION,
	MINOR_VERSION,
	PATCH_LEVEL
} libraryPropertyType_t;
typedef libraryPropertyType_t libraryPropertyType;

#endif
