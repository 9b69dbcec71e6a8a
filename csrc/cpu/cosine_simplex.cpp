// CPU kernels of the cosine-to-simplex ops: one row per iteration, row blocks
// split across threads with at::parallel_for. The math is in simplex.h.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../checks.h"
#include "pydeepclust/simplex.h"

namespace pydeepclust {
namespace {

constexpr const char* kAssign = "cosine_simplex_assign";

std::tuple<at::Tensor, at::Tensor> assign_cpu(const at::Tensor& E, const at::Tensor& codes,
                                              double scale) {
  check_simplex_inputs(E, codes, kAssign);
  const int64_t k = codes.size(0), m = codes.size(1);
  const auto rows = E.reshape({-1, m});  // a view whenever the layout allows
  const auto codes_c = codes.contiguous();
  const auto inv_cn = codes_c.norm(2, {1}).reciprocal();
  const int64_t n = rows.size(0);
  auto dist = at::empty({n}, E.options());
  auto label = at::empty({n}, E.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), kAssign, [&] {
    const scalar_t* e = rows.data_ptr<scalar_t>();
    const int64_t rs = rows.stride(0), es = rows.stride(1);
    const scalar_t* c = codes_c.data_ptr<scalar_t>();
    const scalar_t* icn = inv_cn.data_ptr<scalar_t>();
    scalar_t* d = dist.data_ptr<scalar_t>();
    int64_t* l = label.data_ptr<int64_t>();
    const auto s = static_cast<scalar_t>(scale);
    at::parallel_for(0, n, grain_for(k * m), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        simplex::row_assign(e + i * rs, es, c, icn, k, m, s, d + i, l + i);
      }
    });
  });
  const auto batch = E.sizes().slice(0, E.dim() - 1);
  return {dist.view(batch), label.view(batch)};
}

at::Tensor assign_backward_cpu(const at::Tensor& grad_dist, const at::Tensor& E,
                               const at::Tensor& codes, const at::Tensor& label, double scale) {
  check_simplex_inputs(E, codes, "cosine_simplex_assign_backward");
  const int64_t m = codes.size(1);
  const auto rows = E.reshape({-1, m});
  const int64_t n = rows.size(0);
  // The gradient of dist.sum() is an expanded scalar (stride 0): read it through its
  // stride instead of materialising it.
  const auto g = grad_dist.reshape({n});
  const auto lab = label.reshape({n}).contiguous();
  const auto codes_c = codes.contiguous();
  const auto inv_cn = codes_c.norm(2, {1}).reciprocal();
  auto grad = at::empty({n, m}, E.options());
  AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "cosine_simplex_assign_backward", [&] {
    const scalar_t* e = rows.data_ptr<scalar_t>();
    const int64_t rs = rows.stride(0), es = rows.stride(1);
    const scalar_t* c = codes_c.data_ptr<scalar_t>();
    const scalar_t* icn = inv_cn.data_ptr<scalar_t>();
    const scalar_t* gd = g.data_ptr<scalar_t>();
    const int64_t gs = g.stride(0);
    const int64_t* l = lab.data_ptr<int64_t>();
    scalar_t* out = grad.data_ptr<scalar_t>();
    const auto s = static_cast<scalar_t>(scale);
    at::parallel_for(0, n, grain_for(m), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        simplex::row_assign_grad(e + i * rs, es, c, icn, m, l[i], s, gd[i * gs], out + i * m,
                                 1);
      }
    });
  });
  return grad.view(E.sizes());
}

at::Tensor memberships_cpu(const at::Tensor& E, const at::Tensor& codes) {
  check_simplex_inputs(E, codes, "soft_memberships");
  const int64_t k = codes.size(0), m = codes.size(1);
  const auto rows = E.reshape({-1, m});
  const auto codes_c = codes.contiguous();
  const auto inv_cn = codes_c.norm(2, {1}).reciprocal();
  const int64_t n = rows.size(0);
  auto out = at::empty({n, k}, E.options());
  AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "soft_memberships", [&] {
    const scalar_t* e = rows.data_ptr<scalar_t>();
    const int64_t rs = rows.stride(0), es = rows.stride(1);
    const scalar_t* c = codes_c.data_ptr<scalar_t>();
    const scalar_t* icn = inv_cn.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, grain_for(k * m), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        simplex::row_distances(e + i * rs, es, c, icn, k, m, o + i * k, int64_t(1));
        simplex::memberships_from_distances(o + i * k, int64_t(1), k);
      }
    });
  });
  auto shape = E.sizes().vec();
  shape.back() = k;
  return out.view(shape);
}

}  // namespace

TORCH_LIBRARY_IMPL(pydeepclust, CPU, m) {
  m.impl("cosine_simplex_assign", &assign_cpu);
  m.impl("cosine_simplex_assign_backward", &assign_backward_cpu);
  m.impl("soft_memberships", &memberships_cpu);
}

}  // namespace pydeepclust
