// script.cc: TorchScript modules read from files (torch.jit.save's format)
// and called by method name, without recording gradients. Only this file
// includes the TorchScript headers, which cost more to compile than ATen's.
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/serialization/import.h>

#include <sstream>

#include "bridge.h"

struct osv_module {
  torch::jit::Module mod;
};

namespace {

torch::jit::Module& module_ref(osv_module* m) {
  if (m == nullptr) throw std::invalid_argument("null TorchScript module handle");
  return m->mod;
}

torch::jit::Method method_of(torch::jit::Module& mod, const char* name) {
  if (name == nullptr) throw std::invalid_argument("null method name");
  auto found = mod.find_method(name);
  if (!found) {
    std::string have;
    for (const auto& m : mod.get_methods()) {
      if (!have.empty()) have += ", ";
      have += m.name();
    }
    throw std::invalid_argument(std::string("the module has no method \"") + name + "\" (it has: " +
                                (have.empty() ? "none" : have) + ")");
  }
  return *found;
}

// The separators of osv_script_signature's text.
constexpr char kField = '\x1f';
constexpr char kEntry = '\n';

}  // namespace

extern "C" {

char* osv_script_load(const char* path, int dev_type, int dev_index, osv_module** out) {
  OSV_TRY
  if (path == nullptr) throw std::invalid_argument("null path");
  auto* m = new osv_module{torch::jit::load(std::string(path), osv::device(dev_type, dev_index))};
  m->mod.eval();
  *out = m;
  OSV_CATCH
}

void osv_script_free(osv_module* m) { delete m; }

char* osv_script_signature(osv_module* m, const char* method, char** out) {
  OSV_TRY
  auto& mod = module_ref(m);
  const c10::FunctionSchema& schema = method_of(mod, method).function().getSchema();
  std::ostringstream text;
  text << "schema" << kField << schema << kEntry;
  const auto& args = schema.arguments();
  for (size_t i = 0; i < args.size(); i++) {
    const c10::Argument& a = args[i];
    if (i == 0 && a.name() == "self") continue;
    text << "arg" << kField << a.name() << kField << a.type()->annotation_str() << kField
         << (a.default_value() ? 1 : 0) << kField;
    if (a.default_value()) text << *a.default_value();
    text << kField << (a.kwarg_only() ? 1 : 0) << kEntry;
  }
  for (const c10::Argument& r : schema.returns()) text << "return" << kField << r.type()->annotation_str() << kEntry;
  *out = osv::dup(text.str().c_str());
  OSV_CATCH
}

char* osv_script_call(osv_module* m, const char* method, osv_tensor** args, int nargs, const char** kw_names,
                      const int* kw_kinds, const double* kw_values, int nkw, osv_tensor** out) {
  OSV_TRY
  auto& mod = module_ref(m);
  torch::jit::Method fn = method_of(mod, method);
  std::vector<c10::IValue> stack;
  stack.reserve(static_cast<size_t>(nargs));
  for (int i = 0; i < nargs; i++) stack.emplace_back(osv::ref(args[i]));
  torch::jit::Kwargs kwargs;
  for (int i = 0; i < nkw; i++) {
    if (kw_names[i] == nullptr) throw std::invalid_argument("null keyword argument name");
    const std::string name(kw_names[i]);
    switch (kw_kinds[i]) {
      case 0: kwargs[name] = c10::IValue(kw_values[i] != 0); break;
      case 1: kwargs[name] = c10::IValue(static_cast<int64_t>(kw_values[i])); break;
      case 2: kwargs[name] = c10::IValue(kw_values[i]); break;
      default: throw std::invalid_argument("keyword argument " + name + ": unknown kind " + std::to_string(kw_kinds[i]));
    }
  }
  at::NoGradGuard no_grad;
  c10::IValue r = fn(std::move(stack), kwargs);
  if (!r.isTensor()) {
    throw std::invalid_argument(std::string(method) + " returned " + r.type()->annotation_str() + ", not a Tensor");
  }
  *out = osv::wrap(r.toTensor());
  OSV_CATCH
}

}  // extern "C"
