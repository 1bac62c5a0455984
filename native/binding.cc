// The JS <-> C++ boundary: the only file that includes napi.h (STYLE §2).
//
// Every function here checks its arguments cheaply, calls the core (frame.h, frame_testing.h)
// and turns the result into a number or a plain value. Expected outcomes, including a corrupt
// frame, are status codes from status.h; only misuse (wrong argument types, an output array
// too small) throws, and it throws a TypeError. The build defines NAPI_DISABLE_CPP_EXCEPTIONS
// and -fno-exceptions: a failed Node-API call leaves a pending JS exception, which every
// function checks before going on.
//
// The typed surface of this file is declared once, in src/native.ts; change both together.
//
// Per-environment state lives in DiscoAddon (one instance per main thread or worker), so the
// addon loads in any number of worker threads; there are no static napi_values.

#include <napi.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "flatbuffers/base.h"
#include "frame.h"
#include "frame_testing.h"
#include "status.h"

namespace disco {

namespace {

/// A typed array's memory as the binding sees it: element data, count and byte size.
struct TypedView {
  void* data = nullptr;
  size_t length = 0;  // elements
  size_t bytes = 0;
};

size_t element_size(napi_typedarray_type type) {
  switch (type) {
    case napi_uint32_array:
    case napi_int32_array:
      return 4;
    default:
      return 1;
  }
}

const char* type_name(napi_typedarray_type type) {
  switch (type) {
    case napi_uint8_array:
      return "Uint8Array";
    case napi_uint32_array:
      return "Uint32Array";
    case napi_int32_array:
      return "Int32Array";
    default:
      return "typed array";
  }
}

/// Throws `TypeError: <message>` unless another exception is already pending.
Napi::Value throw_type_error(Napi::Env env, const std::string& message) {
  if (!env.IsExceptionPending()) Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return Napi::Value();
}

/// Reads argument `index` of `info` as a typed array of `type` into `*out`. On a missing or
/// mistyped argument, throws a TypeError naming `fn` and `what` and returns false.
bool get_typed_array(const Napi::CallbackInfo& info, size_t index, napi_typedarray_type type,
                     const char* fn, const char* what, TypedView* out) {
  const napi_env env = info.Env();
  const napi_value value = info[index];
  bool is_typed_array = false;
  napi_typedarray_type actual = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  if (napi_is_typedarray(env, value, &is_typed_array) != napi_ok || !is_typed_array ||
      napi_get_typedarray_info(env, value, &actual, &length, &data, nullptr, nullptr) != napi_ok ||
      actual != type) {
    throw_type_error(info.Env(), std::string(fn) + ": " + what + " must be a " + type_name(type));
    return false;
  }
  out->data = data;
  out->length = length;
  out->bytes = length * element_size(type);
  return true;
}

/// True when the memory of `a` and `b` overlaps (same or aliasing ArrayBuffer regions).
bool overlaps(const TypedView& a, const TypedView& b) {
  if (a.bytes == 0 || b.bytes == 0) return false;
  const auto a0 = reinterpret_cast<uintptr_t>(a.data);
  const auto b0 = reinterpret_cast<uintptr_t>(b.data);
  return a0 < b0 + b.bytes && b0 < a0 + a.bytes;
}

/// Reads argument 0 as a status code; anything that is not an integral number maps to -1,
/// which no status uses.
int32_t status_code_arg(const Napi::CallbackInfo& info) {
  double value = -1;
  if (napi_get_value_double(info.Env(), info[0], &value) != napi_ok) return -1;
  if (!(value >= 0 && value < kStatusCount) || std::trunc(value) != value) return -1;
  return static_cast<int32_t>(value);
}

Napi::Object status_codes(Napi::Env env) {
  Napi::Object codes = Napi::Object::New(env);
#define DISCO_STATUS_PROPERTY(name, value, js_name, message) \
  codes.Set(js_name, Napi::Number::New(env, value));
  DISCO_STATUS_LIST(DISCO_STATUS_PROPERTY)
#undef DISCO_STATUS_PROPERTY
  codes.Freeze();
  return codes;
}

/// The constants of frame.h that TypeScript mirrors (src/native.ts; a test compares them).
Napi::Object frame_layout(Napi::Env env) {
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("version", Napi::Number::New(env, kFrameLayoutVersion));
  layout.Set("headerBytes", Napi::Number::New(env, static_cast<double>(kFrameHeaderBytes)));
  layout.Set("minFrameBytes", Napi::Number::New(env, static_cast<double>(kMinFrameBytes)));
  layout.Set("alignmentBytes", Napi::Number::New(env, static_cast<double>(kFrameAlignment)));
  layout.Set("maxBodyBytes", Napi::Number::New(env, static_cast<double>(kDefaultMaxBodyBytes)));
  layout.Freeze();
  return layout;
}

Napi::Object versions(Napi::Env env) {
  Napi::Object v = Napi::Object::New(env);
  const std::string flatbuffers = std::to_string(FLATBUFFERS_VERSION_MAJOR) + "." +
                                  std::to_string(FLATBUFFERS_VERSION_MINOR) + "." +
                                  std::to_string(FLATBUFFERS_VERSION_REVISION);
  v.Set("flatbuffers", Napi::String::New(env, flatbuffers));
  v.Set("napi", Napi::Number::New(env, NAPI_VERSION));
  v.Set("layout", Napi::Number::New(env, kFrameLayoutVersion));
  v.Freeze();
  return v;
}

/// testing.buildSampleFrame(): the sample frame of frame_testing.h, in a fresh ArrayBuffer
/// (8-byte aligned, as V8 allocates backing stores).
Napi::Value build_sample_frame(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const std::vector<uint8_t> frame = testing::build_sample_frame();
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, frame.size());
  if (env.IsExceptionPending()) return Napi::Value();
  std::memcpy(buffer.Data(), frame.data(), frame.size());
  return Napi::Uint8Array::New(env, frame.size(), buffer, 0);
}

/// testing.describeFrame(frame): JSON of every field after verification; throws an Error
/// "<STATUS>: <message>" (with a numeric `status` property) when verification fails.
Napi::Value describe_frame(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  TypedView frame;
  if (!get_typed_array(info, 0, napi_uint8_array, "describeFrame", "frame", &frame)) {
    return Napi::Value();
  }
  std::string json;
  const Status status =
      testing::describe_frame(static_cast<const uint8_t*>(frame.data), frame.length, &json);
  if (status != Status::kOk) {
    Napi::Error error =
        Napi::Error::New(env, std::string(status_name(status)) + ": " + status_message(status));
    error.Set("status", Napi::Number::New(env, static_cast<int32_t>(status)));
    error.ThrowAsJavaScriptException();
    return Napi::Value();
  }
  return Napi::String::New(env, json.data(), json.size());
}

Napi::Object testing_functions(Napi::Env env) {
  Napi::Object t = Napi::Object::New(env);
  t.Set("buildSampleFrame", Napi::Function::New(env, build_sample_frame, "buildSampleFrame"));
  t.Set("describeFrame", Napi::Function::New(env, describe_frame, "describeFrame"));
  t.Freeze();
  return t;
}

}  // namespace

/// The addon's exports, one instance per JS environment.
class DiscoAddon final : public Napi::Addon<DiscoAddon> {
 public:
  DiscoAddon(Napi::Env env, Napi::Object exports) {
    constexpr auto kEnumerable = napi_enumerable;
    DefineAddon(exports,
                {
                    InstanceMethod<&DiscoAddon::VerifyFrame>("verifyFrame", kEnumerable),
                    InstanceMethod<&DiscoAddon::VerifyBatch>("verifyBatch", kEnumerable),
                    InstanceMethod<&DiscoAddon::SealFrame>("sealFrame", kEnumerable),
                    InstanceMethod<&DiscoAddon::StatusName>("statusName", kEnumerable),
                    InstanceMethod<&DiscoAddon::StatusMessage>("statusMessage", kEnumerable),
                    InstanceMethod<&DiscoAddon::Noop>("noop", kEnumerable),
                    InstanceValue("statusCodes", status_codes(env), kEnumerable),
                    InstanceValue("frameLayout", frame_layout(env), kEnumerable),
                    InstanceValue("versions", versions(env), kEnumerable),
                    InstanceValue("testing", testing_functions(env), kEnumerable),
                });
  }

 private:
  /// verifyFrame(frame: Uint8Array): number — the status of one frame.
  Napi::Value VerifyFrame(const Napi::CallbackInfo& info) {
    TypedView frame;
    if (!get_typed_array(info, 0, napi_uint8_array, "verifyFrame", "frame", &frame)) {
      return Napi::Value();
    }
    const Status status = verify_frame(static_cast<const uint8_t*>(frame.data), frame.length);
    return Napi::Number::New(info.Env(), static_cast<int32_t>(status));
  }

  /// verifyBatch(buf: Uint8Array, spans: Uint32Array, out: Int32Array): number — verifies the
  /// frames at buf[spans[2i] .. spans[2i] + spans[2i+1]), writes each status into out[i] and
  /// returns how many are OK. A span outside buf is INVALID_ARGUMENT and is never read.
  Napi::Value VerifyBatch(const Napi::CallbackInfo& info) {
    TypedView buf;
    TypedView spans;
    TypedView out;
    if (!get_typed_array(info, 0, napi_uint8_array, "verifyBatch", "buf", &buf) ||
        !get_typed_array(info, 1, napi_uint32_array, "verifyBatch", "spans", &spans) ||
        !get_typed_array(info, 2, napi_int32_array, "verifyBatch", "out", &out)) {
      return Napi::Value();
    }
    if (spans.length % 2 != 0) {
      const std::string odd = std::to_string(spans.length);
      return throw_type_error(info.Env(),
                              "verifyBatch: spans must hold (offset, length) pairs; "
                              "its length is odd: " +
                                  odd);
    }
    const size_t count = spans.length / 2;
    if (out.length < count) {
      return throw_type_error(info.Env(), "verifyBatch: out has " + std::to_string(out.length) +
                                              " slots for " + std::to_string(count) +
                                              " spans; it needs at least one per span");
    }
    if (overlaps(out, buf) || overlaps(out, spans)) {
      return throw_type_error(info.Env(),
                              "verifyBatch: out must not share memory with buf or spans");
    }
    const auto* bytes = static_cast<const uint8_t*>(buf.data);
    const auto* span = static_cast<const uint32_t*>(spans.data);
    auto* statuses = static_cast<int32_t*>(out.data);
    uint32_t ok = 0;
    for (size_t i = 0; i < count; ++i) {
      const uint64_t offset = span[2 * i];
      const uint64_t length = span[2 * i + 1];
      Status status = Status::kInvalidArgument;
      if (offset + length <= buf.length) {
        status = verify_frame(bytes + offset, static_cast<size_t>(length));
      }
      statuses[i] = static_cast<int32_t>(status);
      ok += status == Status::kOk ? 1 : 0;
    }
    return Napi::Number::New(info.Env(), ok);
  }

  /// sealFrame(frame: Uint8Array): number — writes the header over frame[0..16) for the body
  /// in frame[16..).
  Napi::Value SealFrame(const Napi::CallbackInfo& info) {
    TypedView frame;
    if (!get_typed_array(info, 0, napi_uint8_array, "sealFrame", "frame", &frame)) {
      return Napi::Value();
    }
    const Status status = seal_frame(static_cast<uint8_t*>(frame.data), frame.length);
    return Napi::Number::New(info.Env(), static_cast<int32_t>(status));
  }

  /// statusName(code: number): string — "BAD_MAGIC", or "UNKNOWN" for a code not in the list.
  Napi::Value StatusName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), status_name(static_cast<Status>(status_code_arg(info))));
  }

  /// statusMessage(code: number): string — the human explanation of a status.
  Napi::Value StatusMessage(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(),
                             status_message(static_cast<Status>(status_code_arg(info))));
  }

  /// noop(): undefined — one boundary crossing and nothing else, the benchmark baseline.
  Napi::Value Noop(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }
};

}  // namespace disco

using disco::DiscoAddon;
NODE_API_NAMED_ADDON(disco_native, DiscoAddon)
