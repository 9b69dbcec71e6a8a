// Outputs of the CPU ops from a small cache of freed buffers.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>

namespace pydeepclust {

// at::empty for an output a CPU kernel writes in full. From 4 MiB on, the memory comes
// from a cache of buffers that earlier outputs released (output_cache.cpp says why).
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

// Frees every cached buffer; returns the bytes given back.
size_t release_output_cache();

// Bytes the cache holds now.
size_t output_cache_bytes();

}  // namespace pydeepclust
