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
//
// Ring ends (RingProducer, RingConsumer) and the batch codecs are ObjectWraps whose objects
// are type-tagged and checked on every call, so a method called on a foreign `this` throws a
// TypeError instead of reinterpreting memory. Each ring end's native state (EndCore) is shared
// by three owners: its JS object, its threadsafe function, and (through the threadsafe
// function) its doorbell thread:
//
//   JS object ──shared_ptr──► EndCore ◄──shared_ptr── threadsafe function (finalizer: stop and
//                                │                      join the doorbell thread, then drop)
//                                └─► Doorbell thread ── posts events to the threadsafe function
//
// close() is idempotent: it detaches outstanding views, stops the doorbell, closes the ring end
// and gives back the threadsafe function. The object's finalizer only does the native part
// (no JS values); an environment cleanup hook closes the native part of what is still open
// when a thread or the process ends. The threadsafe function is unref'd: an open ring end
// never keeps the process alive.
//
// Views over native memory (received batches, reserved slots) are external ArrayBuffers that
// keep the mapping alive (ViewHint) and are detached when released, so that stale use throws.
// A consumer makes the ArrayBuffer of its next batch ahead, when it releases one (spare_).
// Views of 1 MiB and more are made through V8's own API where the build found V8's headers for
// this Node (DISCO_UNTRACKED_VIEWS): see make_view. That part is the only V8 code here.

#include <fcntl.h>
#include <napi.h>
#include <unistd.h>
#if DISCO_UNTRACKED_VIEWS
#include <v8.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "batch.h"
#include "doorbell.h"
#include "flatbuffers/base.h"
#include "frame.h"
#include "frame_testing.h"
#include "ring.h"
#include "shm.h"
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
    case napi_float64_array:
      return 8;
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
    case napi_float64_array:
      return "Float64Array";
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

/// Reads argument `index` of `fn` as an index into `out` (`length` bytes at `data`) that
/// points at 8-byte aligned memory; false with a TypeError pending when it is not one.
bool get_aligned_index(const Napi::CallbackInfo& info, size_t index, const char* fn,
                       const char* name, const TypedView& out, size_t* value) {
  const Napi::Value v = info[index];
  const double n = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0;
  if (!(n >= 0 && n <= static_cast<double>(out.length)) ||
      n != static_cast<double>(static_cast<size_t>(n)) ||
      (reinterpret_cast<uintptr_t>(out.data) + static_cast<size_t>(n)) % kFrameAlignment != 0) {
    throw_type_error(info.Env(), std::string(fn) + ": " + name +
                                     " must be an index of out at 8-byte aligned memory");
    return false;
  }
  *value = static_cast<size_t>(n);
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
#if DISCO_UNTRACKED_VIEWS
  const std::string v8 = std::to_string(V8_MAJOR_VERSION) + "." + std::to_string(V8_MINOR_VERSION) +
                         "." + std::to_string(V8_BUILD_NUMBER) + "." +
                         std::to_string(V8_PATCH_LEVEL);
  v.Set("v8Headers", Napi::String::New(env, v8));
#else
  v.Set("v8Headers", Napi::String::New(env, ""));
#endif
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

// ---- arguments of the ring and batch functions -----------------------------------------------

/// Reads argument `index` as a string of at most `max_bytes` UTF-8 bytes.
bool get_string(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what,
                size_t max_bytes, std::string* out) {
  const Napi::Value value = info[index];
  if (!value.IsString()) {
    throw_type_error(info.Env(), std::string(fn) + ": " + what + " must be a string");
    return false;
  }
  size_t length = 0;
  if (napi_get_value_string_utf8(info.Env(), value, nullptr, 0, &length) != napi_ok) return false;
  if (length > max_bytes) {
    throw_type_error(info.Env(), std::string(fn) + ": " + what + " is " + std::to_string(length) +
                                     " bytes, more than " + std::to_string(max_bytes));
    return false;
  }
  out->resize(length);
  return napi_get_value_string_utf8(info.Env(), value, out->data(), length + 1, &length) == napi_ok;
}

/// Reads argument `index` as an integral number in [min, max].
bool get_integer(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what,
                 double min, double max, double* out) {
  const Napi::Value value = info[index];
  double v = 0;
  if (!value.IsNumber() || napi_get_value_double(info.Env(), value, &v) != napi_ok ||
      std::trunc(v) != v || v < min || v > max) {
    throw_type_error(info.Env(), std::string(fn) + ": " + what + " must be an integer from " +
                                     std::to_string(static_cast<uint64_t>(min)) + " to " +
                                     std::to_string(static_cast<uint64_t>(max)));
    return false;
  }
  *out = v;
  return true;
}

/// Reads argument `index` as an array of Uint8Arrays (undefined: none).
bool get_payloads(const Napi::CallbackInfo& info, size_t index, const char* fn,
                  std::vector<PayloadSpan>* out) {
  out->clear();
  const Napi::Value value = info[index];
  if (value.IsUndefined()) return true;
  if (!value.IsArray()) {
    throw_type_error(info.Env(), std::string(fn) + ": payloads must be an array of Uint8Array");
    return false;
  }
  const auto array = value.As<Napi::Array>();
  const uint32_t n = array.Length();
  out->reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    const napi_value element = array.Get(i);
    bool is_typed_array = false;
    napi_typedarray_type type = napi_int8_array;
    size_t length = 0;
    void* data = nullptr;
    if (element == nullptr || napi_is_typedarray(info.Env(), element, &is_typed_array) != napi_ok ||
        !is_typed_array ||
        napi_get_typedarray_info(info.Env(), element, &type, &length, &data, nullptr, nullptr) !=
            napi_ok ||
        type != napi_uint8_array) {
      throw_type_error(info.Env(), std::string(fn) + ": payloads[" + std::to_string(i) +
                                       "] must be a Uint8Array");
      return false;
    }
    out->push_back(PayloadSpan{static_cast<const uint8_t*>(data), length});
  }
  return true;
}

/// Reads the six output arrays of a decode (arguments first .. first + 5) into `*target`.
bool get_decode_target(const Napi::CallbackInfo& info, size_t first, const char* fn,
                       DecodeTarget* target) {
  TypedView summary, frames, envelopes, epochs, headers, strings;
  if (!get_typed_array(info, first, napi_uint32_array, fn, "summary", &summary) ||
      !get_typed_array(info, first + 1, napi_uint32_array, fn, "frames", &frames) ||
      !get_typed_array(info, first + 2, napi_uint32_array, fn, "envelopes", &envelopes) ||
      !get_typed_array(info, first + 3, napi_float64_array, fn, "epochs", &epochs) ||
      !get_typed_array(info, first + 4, napi_uint32_array, fn, "headers", &headers) ||
      !get_typed_array(info, first + 5, napi_uint32_array, fn, "strings", &strings)) {
    return false;
  }
  const size_t envelope_capacity = envelopes.length / kEnvelopeWords;
  if (summary.length < kSummaryWords || frames.length < kFrameWords || envelope_capacity == 0 ||
      epochs.length < envelope_capacity) {
    throw_type_error(info.Env(), std::string(fn) + ": output arrays too short (summary needs " +
                                     std::to_string(kSummaryWords) + " words, frames " +
                                     std::to_string(kFrameWords) + " per frame, envelopes " +
                                     std::to_string(kEnvelopeWords) +
                                     " per envelope, epochs one per envelope)");
    return false;
  }
  const TypedView* all[] = {&summary, &frames, &envelopes, &epochs, &headers, &strings};
  for (size_t i = 0; i < 6; ++i) {
    for (size_t j = i + 1; j < 6; ++j) {
      if (overlaps(*all[i], *all[j])) {
        throw_type_error(info.Env(), std::string(fn) + ": output arrays must not share memory");
        return false;
      }
    }
  }
  target->summary = static_cast<uint32_t*>(summary.data);
  target->frames = static_cast<uint32_t*>(frames.data);
  target->frame_capacity = frames.length / kFrameWords;
  target->envelopes = static_cast<uint32_t*>(envelopes.data);
  target->epochs = static_cast<double*>(epochs.data);
  target->envelope_capacity = envelope_capacity;
  target->headers = static_cast<uint32_t*>(headers.data);
  target->header_capacity = headers.length / 2;
  target->strings = static_cast<uint32_t*>(strings.data);
  target->string_capacity = strings.length / 2;
  return true;
}

Napi::Value status_value(Napi::Env env, Status s) {
  return Napi::Number::New(env, static_cast<int32_t>(s));
}

// ---- views over native memory ----------------------------------------------------------------

/// Most of a ring's data area one spare ArrayBuffer spans (RingConsumerWrap::make_spare).
constexpr uint64_t kSpareWindowBytes = uint64_t{32} << 20;

/// Keeps what a view's bytes live in alive for as long as the view's ArrayBuffer exists: the
/// segment mapping, or a heap buffer handed over when the view outlives its owner.
struct ViewHint {
  std::shared_ptr<SegmentMapping> mapping;
  uint8_t* owned = nullptr;
  ~ViewHint() { std::free(owned); }
};

void finalize_view(napi_env, void*, void* hint) {
  delete static_cast<std::shared_ptr<ViewHint>*>(hint);
}

/// An external ArrayBuffer over `length` bytes at `data` that holds `hint` until it is
/// collected. Null on failure (JS exception pending).
napi_value make_external(Napi::Env env, uint8_t* data, size_t length,
                         const std::shared_ptr<ViewHint>& hint) {
  auto* holder = new std::shared_ptr<ViewHint>(hint);
  napi_value ab = nullptr;
  if (napi_create_external_arraybuffer(env, data, length, finalize_view, holder, &ab) != napi_ok) {
    delete holder;
    return nullptr;
  }
  return ab;
}

#if DISCO_UNTRACKED_VIEWS
/// Views at least this large are made outside V8's external-memory count (make_view).
constexpr size_t kUntrackedViewBytes = size_t{1} << 20;

/// As make_external, but V8 does not count the bytes as external memory: the ArrayBuffer's
/// backing store has V8's empty deleter (V8 then leaves it out of the count, as it could not
/// free the memory anyway), and a Node-API finalizer on the ArrayBuffer object drops `hint`
/// when it is collected, as make_external's deleter does.
napi_value make_untracked(Napi::Env env, uint8_t* data, size_t length,
                          const std::shared_ptr<ViewHint>& hint) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::shared_ptr<v8::BackingStore> store =
      v8::ArrayBuffer::NewBackingStore(data, length, v8::BackingStore::EmptyDeleter, nullptr);
  const v8::Local<v8::Value> local = v8::ArrayBuffer::New(isolate, std::move(store));
  // Node-API's own conversion of a Local (in the current handle scope) to a napi_value.
  napi_value ab = reinterpret_cast<napi_value>(*local);
  auto* holder = new std::shared_ptr<ViewHint>(hint);
  if (napi_add_finalizer(env, ab, holder, finalize_view, nullptr, nullptr) != napi_ok) {
    delete holder;
    return nullptr;
  }
  return ab;
}
#endif

/// A Uint8Array over `length` bytes at `data`, its ArrayBuffer holding `hint`; `*buffer` is the
/// ArrayBuffer (to detach later). Empty on failure (JS exception pending).
///
/// V8 counts the bytes of every ArrayBuffer as external memory and starts a full garbage
/// collection whenever that count grows by more than 64 MiB at once: with views counted, every
/// message over 64 MiB (a reassembled one, or one record of a large ring) cost the receiver a
/// full collection, and the reserved slot of one cost the sender one. These views' bytes are
/// the ring's or the reassembly buffer's, freed by the ring end, not by V8, so large views are
/// left out of the count where the build allows (DISCO_UNTRACKED_VIEWS).
Napi::Value make_view(Napi::Env env, uint8_t* data, size_t length,
                      const std::shared_ptr<ViewHint>& hint, napi_value* buffer) {
#if DISCO_UNTRACKED_VIEWS
  napi_value ab = length >= kUntrackedViewBytes ? make_untracked(env, data, length, hint)
                                                : make_external(env, data, length, hint);
#else
  napi_value ab = make_external(env, data, length, hint);
#endif
  if (ab == nullptr) return Napi::Value();
  napi_value view = nullptr;
  if (napi_create_typedarray(env, napi_uint8_array, length, ab, 0, &view) != napi_ok) {
    return Napi::Value();
  }
  *buffer = ab;
  return Napi::Value(env, view);
}

/// bindOutput(envelopes, headers, strings, frames): { summary, frames, envelopes, epochs,
/// headers, strings } — decode output arrays in one block of native memory, whose pointers
/// `*target` gets, so that a read or decode call need not check six arrays each time. `*owner`
/// keeps the block alive while the addon object uses it (the arrays keep it alive for JS).
Napi::Value bind_output(const Napi::CallbackInfo& info, const char* fn,
                        std::shared_ptr<ViewHint>* owner, DecodeTarget* target) {
  const Napi::Env env = info.Env();
  constexpr double kMaxItems = 1 << 24;
  double envelopes = 0, headers = 0, strings = 0, frames = 0;
  if (!get_integer(info, 0, fn, "envelopes", 1, kMaxItems, &envelopes) ||
      !get_integer(info, 1, fn, "headers", 0, kMaxItems, &headers) ||
      !get_integer(info, 2, fn, "strings", 0, kMaxItems, &strings) ||
      !get_integer(info, 3, fn, "frames", 1, kMaxItems, &frames)) {
    return Napi::Value();
  }
  const auto e = static_cast<size_t>(envelopes), h = static_cast<size_t>(headers),
             st = static_cast<size_t>(strings), f = static_cast<size_t>(frames);
  // Epochs first, so that the f64s are 8-byte aligned; u32 arrays after them.
  struct Part {
    const char* name;
    napi_typedarray_type type;
    size_t count;
    size_t offset;
  };
  Part parts[] = {{"epochs", napi_float64_array, e, 0},
                  {"summary", napi_uint32_array, kSummaryWords, 0},
                  {"frames", napi_uint32_array, f * kFrameWords, 0},
                  {"envelopes", napi_uint32_array, e * kEnvelopeWords, 0},
                  {"headers", napi_uint32_array, 2 * h, 0},
                  {"strings", napi_uint32_array, 2 * st, 0}};
  size_t bytes = 0;
  for (Part& p : parts) {
    p.offset = bytes;
    bytes += p.count * element_size(p.type);
  }
  auto hint = std::make_shared<ViewHint>();
  hint->owned = static_cast<uint8_t*>(std::calloc(bytes, 1));
  if (hint->owned == nullptr) return throw_type_error(env, std::string(fn) + ": out of memory");
  napi_value ab = make_external(env, hint->owned, bytes, hint);
  if (ab == nullptr) return Napi::Value();
  Napi::Object out = Napi::Object::New(env);
  for (const Part& p : parts) {
    napi_value array = nullptr;
    if (napi_create_typedarray(env, p.type, p.count, ab, p.offset, &array) != napi_ok) {
      return Napi::Value();
    }
    out.Set(p.name, Napi::Value(env, array));
  }
  uint8_t* base = hint->owned;
  DecodeTarget t;
  t.epochs = reinterpret_cast<double*>(base + parts[0].offset);
  t.summary = reinterpret_cast<uint32_t*>(base + parts[1].offset);
  t.frames = reinterpret_cast<uint32_t*>(base + parts[2].offset);
  t.frame_capacity = f;
  t.envelopes = reinterpret_cast<uint32_t*>(base + parts[3].offset);
  t.envelope_capacity = e;
  t.headers = reinterpret_cast<uint32_t*>(base + parts[4].offset);
  t.header_capacity = h;
  t.strings = reinterpret_cast<uint32_t*>(base + parts[5].offset);
  t.string_capacity = st;
  *owner = std::move(hint);
  *target = t;
  return out;
}

/// Detaches the ArrayBuffer held by `ref` (if any) and empties the reference.
void detach_view(Napi::Reference<Napi::Value>* ref) {
  if (ref->IsEmpty()) return;
  const Napi::Value ab = ref->Value();
  if (!ab.IsEmpty() && ab.IsArrayBuffer()) napi_detach_arraybuffer(ref->Env(), ab);
  ref->Reset();
}

// ---- ring ends, shared with their threadsafe function and doorbell thread -------------------

/// Events a ring end reports to its JS callback (DoorbellEvent values).
constexpr int32_t kEventReady = static_cast<int32_t>(DoorbellEvent::kReady);
constexpr int32_t kEventPeerDead = static_cast<int32_t>(DoorbellEvent::kPeerDead);

struct EndCore {
  virtual ~EndCore() = default;
  std::unique_ptr<Doorbell> bell;
  napi_threadsafe_function tsfn = nullptr;
  bool tsfn_released = false;   // our reference given back (JS thread only)
  bool tsfn_finalized = false;  // its finalizer ran (JS thread only)
  bool closed = false;

  /// Closes the ring end and stops the doorbell; no JS values. Idempotent.
  void close_native() noexcept {
    if (closed) return;
    closed = true;
    if (bell) bell->stop();  // joined by the threadsafe function's finalizer
    close_ring();
  }

  /// Called on the doorbell thread when the peer died, before JS hears of it.
  virtual void on_peer_dead() noexcept {}

  /// Gives back the threadsafe function (its finalizer then joins the doorbell thread).
  void release_tsfn() noexcept {
    if (tsfn == nullptr || tsfn_released || tsfn_finalized) return;
    tsfn_released = true;
    napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  }

 protected:
  virtual void close_ring() noexcept = 0;
};

struct ProducerCore final : EndCore {
  std::unique_ptr<RingProducer> ring;
  // One string table per lane: a link stages each lane's batches as they are sent and writes
  // the promise lane first, so the two lanes' batches reach the producer out of staging order.
  BatchEncoder encoders[2];
  std::vector<PayloadSpan> payloads;  // reused between writes

  // Writes fail with PEER_DEAD from now on (an atomic flag: safe from the doorbell thread).
  void on_peer_dead() noexcept override { ring->set_consumer_dead(); }

 protected:
  void close_ring() noexcept override { ring->close(); }
};

struct ConsumerCore final : EndCore {
  std::unique_ptr<RingConsumer> ring;
  BatchDecoder decoder;
  std::vector<RecordSpan> spans;  // reused between reads
  BellKind bell_kind = BellKind::kFutex;
  std::string name;
  int pipe_fd = -1;

  bool auto_arm = true;  // readBatch arms the doorbell when it finds the ring empty

  ~ConsumerCore() override {
    if (pipe_fd >= 0) ::close(pipe_fd);
  }

  /// The consumer's half of the sleep handshake (doorbell.h) at the read position: true when
  /// armed (the doorbell rings when records arrive), false when records (or the producer's
  /// close) arrived meanwhile: read them instead.
  [[nodiscard]] bool arm() noexcept {
    if (bell_kind == BellKind::kFutex) {
      if (ring->has_unread()) return false;
      // Fires at once if records arrived after that check.
      if (bell) bell->arm(ring->read_position(), 0);
      return true;
    }
    return announce_consumer_sleep(ring->memory().header, ring->read_position());
  }

  /// Takes back an arm (doorbell.h: "Taking an announcement back").
  void disarm() noexcept {
    if (bell_kind == BellKind::kPipe) {
      // Relaxed: a producer that read 1 already rings once more, which is harmless.
      ring->memory().header->consumer_sleeping.store(0, std::memory_order_relaxed);
    } else if (bell) {
      bell->disarm();
    }
  }

 protected:
  void close_ring() noexcept override {
    ring->close();
    if (bell_kind == BellKind::kPipe) {
      if (pipe_fd >= 0) ::close(pipe_fd);
      pipe_fd = -1;
      remove_pipe_bell(name);
    }
  }
};

/// The doorbell thread's callback: posts the event to JS. Never touches a JS value.
void on_doorbell(void* context, DoorbellEvent event) {
  auto* core = static_cast<EndCore*>(context);
  if (event == DoorbellEvent::kPeerDead) core->on_peer_dead();
  // The event travels as the data pointer (value + 1, so that it is never null): no allocation
  // per wake-up. A call after close returns napi_closing, which is fine.
  napi_call_threadsafe_function(core->tsfn,
                                reinterpret_cast<void*>(static_cast<uintptr_t>(event) + 1),
                                napi_tsfn_nonblocking);
}

void call_js_event(napi_env env, napi_value callback, void* context, void* data) {
  if (env == nullptr || callback == nullptr) return;  // torn down: nothing to call
  const auto& core = *static_cast<std::shared_ptr<EndCore>*>(context);
  if (core->closed) return;
  const auto event = static_cast<int32_t>(reinterpret_cast<uintptr_t>(data) - 1);
  napi_value arg = nullptr;
  napi_value receiver = nullptr;
  if (napi_create_int32(env, event, &arg) != napi_ok ||
      napi_get_undefined(env, &receiver) != napi_ok) {
    return;
  }
  // An exception thrown by the callback stays pending and Node reports it as uncaught.
  napi_call_function(env, receiver, callback, 1, &arg, nullptr);
}

void finalize_tsfn(napi_env, void* finalize_data, void*) {
  auto* holder = static_cast<std::shared_ptr<EndCore>*>(finalize_data);
  EndCore& core = **holder;
  core.tsfn_finalized = true;
  if (core.bell) {
    core.bell->stop();
    core.bell->join();
  }
  delete holder;
}

/// Makes the unref'd threadsafe function of `core` around `callback` and starts its doorbell
/// with `options`. Status kSystemError with `*err` when the thread cannot start.
Status start_events(Napi::Env env, const std::shared_ptr<EndCore>& core, Napi::Function callback,
                    Doorbell::Side side, const DoorbellOptions& options, int* err) {
  auto* holder = new std::shared_ptr<EndCore>(core);
  napi_value name = Napi::String::New(env, "disco ring doorbell");
  if (napi_create_threadsafe_function(env, callback, nullptr, name, 0, 1, holder, finalize_tsfn,
                                      holder, call_js_event, &core->tsfn) != napi_ok) {
    delete holder;
    core->tsfn = nullptr;
    return Status::kNoMemory;
  }
  napi_unref_threadsafe_function(env, core->tsfn);
  const RingMemory& memory = side == Doorbell::Side::kConsumer
                                 ? static_cast<ConsumerCore&>(*core).ring->memory()
                                 : static_cast<ProducerCore&>(*core).ring->memory();
  core->bell = std::make_unique<Doorbell>(memory, side, options, on_doorbell, core.get());
  const Status started = core->bell->start(err);
  if (started != Status::kOk) core->bell.reset();
  return started;
}

/// keepAlive(on: boolean): makes the end's event callback keep the event loop alive (on) or
/// not (off, the default). Shared by both wraps.
Napi::Value keep_alive(const Napi::CallbackInfo& info, EndCore& core) {
  if (!info[0].IsBoolean()) return throw_type_error(info.Env(), "keepAlive: on must be a boolean");
  if (!core.closed && core.tsfn != nullptr && !core.tsfn_released && !core.tsfn_finalized) {
    if (info[0].As<Napi::Boolean>().Value()) {
      napi_ref_threadsafe_function(info.Env(), core.tsfn);
    } else {
      napi_unref_threadsafe_function(info.Env(), core.tsfn);
    }
  }
  return info.Env().Undefined();
}

/// Every ring end opened in one environment, for the cleanup hook.
struct OpenEnds {
  std::vector<std::weak_ptr<EndCore>> ends;

  void add(const std::shared_ptr<EndCore>& core) {
    // Forget the ends that are gone, so the list stays as long as what is open.
    size_t kept = 0;
    for (auto& w : ends) {
      if (!w.expired()) ends[kept++] = std::move(w);
    }
    ends.resize(kept);
    ends.push_back(core);
  }
};

/// Environment cleanup: closes (natively) what is still open; the threadsafe functions are
/// finalized by Node itself, which joins the doorbell threads.
void close_open_ends(void* arg) {
  auto* open = static_cast<OpenEnds*>(arg);
  for (auto& w : open->ends) {
    if (auto core = w.lock()) core->close_native();
  }
  delete open;
}

/// Reads the options object of an open call (argument `index`, may be undefined).
bool get_doorbell_options(const Napi::CallbackInfo& info, size_t index, const char* fn,
                          DoorbellOptions* options, BellKind* kind) {
  const Napi::Value value = info[index];
  if (value.IsUndefined()) return true;
  if (!value.IsObject()) {
    throw_type_error(info.Env(), std::string(fn) + ": options must be an object");
    return false;
  }
  const auto o = value.As<Napi::Object>();
  const Napi::Value doorbell = o.Get("doorbell");
  if (!doorbell.IsUndefined()) {
    const std::string d = doorbell.IsString() ? doorbell.As<Napi::String>().Utf8Value() : "";
    if (d != "futex" && d != "pipe") {
      throw_type_error(info.Env(),
                       std::string(fn) + ": options.doorbell must be 'futex' or 'pipe'");
      return false;
    }
    if (kind != nullptr) *kind = d == "pipe" ? BellKind::kPipe : BellKind::kFutex;
  }
  struct NumberOption {
    const char* name;
    double max;
    uint32_t* out;
  };
  // spinNs and spinMode are the JS reader's (src/transports/ring-reader.ts): ignored here.
  const Napi::Value liveness = o.Get("livenessMs");
  if (!liveness.IsUndefined()) {
    const double d = liveness.IsNumber() ? liveness.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 1 && d <= 50) || std::trunc(d) != d) {
      throw_type_error(info.Env(),
                       std::string(fn) + ": options.livenessMs must be an integer from 1 to 50");
      return false;
    }
    options->liveness_ms = static_cast<uint32_t>(d);
  }
  return !info.Env().IsExceptionPending();
}

/// Type tags of the wrapped classes (random, fixed: they only need to differ).
constexpr napi_type_tag kProducerTag = {0x6a1c5e3f2b9d4c71ull, 0x8e02f4a1c37b5d96ull};
constexpr napi_type_tag kConsumerTag = {0x1f7d3b9e5c2a4f68ull, 0xb45e91c2d0a37f13ull};
constexpr napi_type_tag kEncoderTag = {0x93c4e1a7f25b6d08ull, 0x2d7b0e9f4a61c3b5ull};
constexpr napi_type_tag kDecoderTag = {0x4e8a2c6f1d3b9e70ull, 0xc16f5a3e8b2d7049ull};

/// True when `this` of `info` carries `tag`; else throws a TypeError naming `cls`.
bool check_this(const Napi::CallbackInfo& info, const napi_type_tag& tag, const char* cls) {
  bool tagged = false;
  const napi_value self = info.This();
  napi_valuetype type = napi_undefined;
  if (napi_typeof(info.Env(), self, &type) == napi_ok && type == napi_object &&
      napi_check_object_type_tag(info.Env(), self, &tag, &tagged) == napi_ok && tagged) {
    return true;
  }
  throw_type_error(info.Env(), std::string("method called on an object that is not a ") + cls);
  return false;
}

/// ringLayout constants for the TS mirror.
Napi::Object ring_layout(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", Napi::Number::New(env, kRingLayoutVersion));
  o.Set("headerBytes", Napi::Number::New(env, kRingHeaderBytes));
  o.Set("minCapacity", Napi::Number::New(env, static_cast<double>(kMinRingCapacity)));
  o.Set("maxCapacity", Napi::Number::New(env, static_cast<double>(kMaxRingCapacity)));
  o.Set("recordHeaderBytes", Napi::Number::New(env, static_cast<double>(kRecordHeaderBytes)));
  o.Set("maxMessageBytes", Napi::Number::New(env, static_cast<double>(kMaxMessageBytes)));
  o.Set("maxNameBytes", Napi::Number::New(env, static_cast<double>(kMaxSegmentNameBytes)));
  o.Freeze();
  return o;
}

/// batchLayout constants for the TS mirror (src/native-batch.ts).
Napi::Object batch_layout(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("magic", Napi::Number::New(env, kBatchMagic));
  o.Set("version", Napi::Number::New(env, kBatchVersion));
  o.Set("headerBytes", Napi::Number::New(env, static_cast<double>(kBatchHeaderBytes)));
  o.Set("envelopeFixedBytes",
        Napi::Number::New(env, static_cast<double>(kBatchEnvelopeFixedBytes)));
  o.Set("summaryWords", Napi::Number::New(env, static_cast<double>(kSummaryWords)));
  o.Set("frameWords", Napi::Number::New(env, static_cast<double>(kFrameWords)));
  o.Set("envelopeWords", Napi::Number::New(env, static_cast<double>(kEnvelopeWords)));
  o.Set("noString", Napi::Number::New(env, kNoString));
  o.Set("stringSoftEntries", Napi::Number::New(env, kStringSoftEntries));
  o.Set("stringSoftBytes", Napi::Number::New(env, static_cast<double>(kStringSoftBytes)));
  o.Set("stringHardEntries", Napi::Number::New(env, kStringHardEntries));
  o.Set("stringHardBytes", Napi::Number::New(env, static_cast<double>(kStringHardBytes)));
  o.Freeze();
  return o;
}

}  // namespace

class DiscoAddon;

/// The writing end of a ring, as JS sees it (src/native.ts NativeRingProducer).
class RingProducerWrap final : public Napi::ObjectWrap<RingProducerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit RingProducerWrap(const Napi::CallbackInfo& info);
  ~RingProducerWrap() override;

 private:
  bool usable(const Napi::CallbackInfo& info) {
    return check_this(info, kProducerTag, "RingProducer");
  }
  void drop_reservation();
  [[nodiscard]] Status writable(Napi::Env env);
  void keep_borrowed(const Napi::CallbackInfo& info, size_t index);
  void drop_borrowed_when_done();
  Napi::Value WriteBatch(const Napi::CallbackInfo& info);
  Napi::Value WriteFrame(const Napi::CallbackInfo& info);
  Napi::Value Reserve(const Napi::CallbackInfo& info);
  Napi::Value Commit(const Napi::CallbackInfo& info);
  Napi::Value Abandon(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value NotifyWhenWritable(const Napi::CallbackInfo& info);
  Napi::Value KeepAlive(const Napi::CallbackInfo& info);
  Napi::Value FreeBytes(const Napi::CallbackInfo& info);
  Napi::Value CheckPeer(const Napi::CallbackInfo& info);
  Napi::Value State(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetMaxContentBytes(const Napi::CallbackInfo& info);
  Napi::Value GetPending(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);

  std::shared_ptr<ProducerCore> core_;
  Napi::Reference<Napi::Value> reservation_;  // ArrayBuffer of the reserved slot's view
  // The payload a pending chunked message still copies from (BatchEncoder::write's
  // `borrowed`), held so that it is not collected, with the memory it had when it was taken.
  Napi::Reference<Napi::Value> borrowed_;
  const void* borrowed_data_ = nullptr;
  size_t borrowed_length_ = 0;
};

/// The reading end of a ring, as JS sees it (src/native.ts NativeRingConsumer).
class RingConsumerWrap final : public Napi::ObjectWrap<RingConsumerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit RingConsumerWrap(const Napi::CallbackInfo& info);
  ~RingConsumerWrap() override;

 private:
  bool usable(const Napi::CallbackInfo& info) {
    return check_this(info, kConsumerTag, "RingConsumer");
  }
  void release_batch();
  void make_spare(Napi::Env env);
  Napi::Value BindOutput(const Napi::CallbackInfo& info);
  Napi::Value ReadBatch(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  Napi::Value DoorbellFd(const Napi::CallbackInfo& info);
  Napi::Value KeepAlive(const Napi::CallbackInfo& info);
  Napi::Value PollWords(const Napi::CallbackInfo& info);
  Napi::Value AutoArm(const Napi::CallbackInfo& info);
  Napi::Value Arm(const Napi::CallbackInfo& info);
  Napi::Value Disarm(const Napi::CallbackInfo& info);
  Napi::Value CheckPeer(const Napi::CallbackInfo& info);
  Napi::Value State(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  void publish_read_position() noexcept;

  std::shared_ptr<ConsumerCore> core_;
  // The read position as two u32 words (low, high) that JS polls (pollWords()): heap memory
  // owned by this hint and by the external ArrayBuffer JS sees it through. Null until asked.
  std::shared_ptr<ViewHint> read_words_;
  Napi::Reference<Napi::Value> view_;  // ArrayBuffer of the outstanding batch
  std::shared_ptr<ViewHint> hint_;
  // An external ArrayBuffer over the data area, made after a release for the next read (or
  // empty). Making an external ArrayBuffer is most of what a view costs (Node builds a Buffer
  // and a weak callback for it), so a read that finds one only adds its Uint8Array: the
  // latency of a hop no longer includes it. Every batch but a reassembled message lies in the
  // data area. The spare serves one batch and is detached with it, as views must be. It spans
  // [spare_start_, spare_start_ + spare_bytes_) of the area: all of it in a ring of up to
  // kSpareWindowBytes, else that much from the read position (see make_spare).
  Napi::Reference<Napi::Value> spare_;
  std::shared_ptr<ViewHint> spare_hint_;
  uint64_t spare_start_ = 0;
  uint64_t spare_bytes_ = 0;
  RecordBatch batch_;
  bool has_batch_ = false;
  // The output arrays of bindOutput(): heap memory owned by this hint and by the external
  // ArrayBuffer JS sees them through, whichever lets go last. The decoder writes memory that
  // is ours whatever JS does with that buffer, so readBatch(maxBytes) checks no arrays.
  std::shared_ptr<ViewHint> output_;
  DecodeTarget output_target_;
};

/// A staging layout -> sealed frame encoder with its own string table, for links that are not
/// rings (gRPC) and for tests (src/native.ts NativeBatchEncoder).
class BatchEncoderWrap final : public Napi::ObjectWrap<BatchEncoderWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit BatchEncoderWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Encode(const Napi::CallbackInfo& info);
  Napi::Value EncodeInto(const Napi::CallbackInfo& info);
  /// A frame encode/encodeInto built: in the caller's region (`in_place`), in scratch_
  /// (`heap` empty), or at `heap_offset` of a fresh buffer of its bound.
  struct Built {
    const uint8_t* frame = nullptr;
    size_t length = 0;
    Napi::ArrayBuffer heap;
    size_t heap_offset = 0;
    bool in_place = false;
  };
  /// Prepares and builds the frame of encode/encodeInto's staging and payloads (arguments 0
  /// and 1): straight into `region` (`region_bytes`, 8-byte aligned) when its bound fits
  /// there, the frame at the region's end; else as `encode` does. Returns kOk, a
  /// prepare/build status, or kInvalidArgument with a JS exception pending.
  Status build(const Napi::CallbackInfo& info, const char* fn, Built* out,
               uint8_t* region = nullptr, size_t region_bytes = 0);
  /// The built frame in memory of its own: the heap buffer's view, or a copy of scratch.
  static Napi::Value own_frame(Napi::Env env, const Built& b);
  BatchEncoder encoder_;
  std::vector<PayloadSpan> payloads_;
  /// Where frames up to kEncodeScratchMaxBytes are built before their one copy out; u64 words
  /// keep it 8-byte aligned.
  std::vector<uint64_t> scratch_;
};

/// Verifies and decodes one frame held in JS memory into the decoded layout
/// (src/native.ts NativeFrameDecoder).
class FrameDecoderWrap final : public Napi::ObjectWrap<FrameDecoderWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit FrameDecoderWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value BindOutput(const Napi::CallbackInfo& info);
  BatchDecoder decoder_;
  std::shared_ptr<ViewHint> output_;
  DecodeTarget output_target_;
};

/// The addon's exports, one instance per JS environment.
class DiscoAddon final : public Napi::Addon<DiscoAddon> {
 public:
  DiscoAddon(Napi::Env env, Napi::Object exports) {
    open_ends_ = new OpenEnds();
    napi_add_env_cleanup_hook(env, close_open_ends, open_ends_);
    const Napi::Function producer = RingProducerWrap::Define(env);
    const Napi::Function consumer = RingConsumerWrap::Define(env);
    producer_ctor_ = Napi::Persistent(producer);
    consumer_ctor_ = Napi::Persistent(consumer);
    constexpr auto kEnumerable = napi_enumerable;
    DefineAddon(
        exports,
        {
            InstanceMethod<&DiscoAddon::VerifyFrame>("verifyFrame", kEnumerable),
            InstanceMethod<&DiscoAddon::VerifyBatch>("verifyBatch", kEnumerable),
            InstanceMethod<&DiscoAddon::SealFrame>("sealFrame", kEnumerable),
            InstanceMethod<&DiscoAddon::StatusName>("statusName", kEnumerable),
            InstanceMethod<&DiscoAddon::StatusMessage>("statusMessage", kEnumerable),
            InstanceMethod<&DiscoAddon::Noop>("noop", kEnumerable),
            InstanceMethod<&DiscoAddon::RingCreate>("ringCreate", kEnumerable),
            InstanceMethod<&DiscoAddon::RingUnlink>("ringUnlink", kEnumerable),
            InstanceMethod<&DiscoAddon::RemoveStaleSegments>("removeStaleSegments", kEnumerable),
            InstanceMethod<&DiscoAddon::OpenRingProducer>("openRingProducer", kEnumerable),
            InstanceMethod<&DiscoAddon::OpenRingConsumer>("openRingConsumer", kEnumerable),
            InstanceMethod<&DiscoAddon::ProcessIdentity>("processIdentity", kEnumerable),
            InstanceMethod<&DiscoAddon::LastErrno>("lastErrno", kEnumerable),
            InstanceValue("RingProducer", producer, kEnumerable),
            InstanceValue("RingConsumer", consumer, kEnumerable),
            InstanceValue("BatchEncoder", BatchEncoderWrap::Define(env), kEnumerable),
            InstanceValue("FrameDecoder", FrameDecoderWrap::Define(env), kEnumerable),
            InstanceValue("statusCodes", status_codes(env), kEnumerable),
            InstanceValue("frameLayout", frame_layout(env), kEnumerable),
            InstanceValue("ringLayout", ring_layout(env), kEnumerable),
            InstanceValue("batchLayout", batch_layout(env), kEnumerable),
            InstanceValue("versions", versions(env), kEnumerable),
            InstanceValue("testing", testing_functions(env), kEnumerable),
        });
  }

  /// The core the next RingProducerWrap / RingConsumerWrap constructor takes (set just before
  /// constructing one, so that `new RingProducer()` from JS finds none and throws).
  std::shared_ptr<ProducerCore> pending_producer;
  std::shared_ptr<ConsumerCore> pending_consumer;

 private:
  /// A status from a call that set `err`: remembers errno for lastErrno() when it is a system
  /// error.
  Napi::Value system_status(Napi::Env env, Status s, int err) {
    if (s == Status::kSystemError) last_errno_ = err;
    return status_value(env, s);
  }

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

  /// ringCreate(name: string, capacity: number): number — creates the segment of a ring.
  Napi::Value RingCreate(const Napi::CallbackInfo& info) {
    std::string name;
    double capacity = 0;
    if (!get_string(info, 0, "ringCreate", "name", kMaxSegmentNameBytes * 4, &name) ||
        !get_integer(info, 1, "ringCreate", "capacity", 0, 9007199254740991.0, &capacity)) {
      return Napi::Value();
    }
    int err = 0;
    const Status s = create_ring(name, static_cast<uint64_t>(capacity), &err);
    return system_status(info.Env(), s, err);
  }

  /// ringUnlink(name: string): number — unlinks a ring's segment (and its pipe doorbell).
  Napi::Value RingUnlink(const Napi::CallbackInfo& info) {
    std::string name;
    if (!get_string(info, 0, "ringUnlink", "name", kMaxSegmentNameBytes * 4, &name)) {
      return Napi::Value();
    }
    int err = 0;
    const Status s = unlink_segment(name, &err);
    return system_status(info.Env(), s, err);
  }

  /// removeStaleSegments(prefix: string): { status, removed }.
  Napi::Value RemoveStaleSegments(const Napi::CallbackInfo& info) {
    std::string prefix;
    if (!get_string(info, 0, "removeStaleSegments", "prefix", kMaxSegmentNameBytes * 4, &prefix)) {
      return Napi::Value();
    }
    int err = 0;
    uint32_t removed = 0;
    const Status s = remove_stale_segments(prefix, kRingMagic, &removed, &err);
    Napi::Object result = Napi::Object::New(info.Env());
    result.Set("status", system_status(info.Env(), s, err));
    result.Set("removed", Napi::Number::New(info.Env(), removed));
    return result;
  }

  /// processIdentity(): { pid, startTicks } of this process.
  Napi::Value ProcessIdentity(const Napi::CallbackInfo& info) {
    const uint64_t self = self_identity();
    Napi::Object result = Napi::Object::New(info.Env());
    result.Set("pid", Napi::Number::New(info.Env(), identity_pid(self)));
    result.Set("startTicks",
               Napi::Number::New(info.Env(), static_cast<double>(identity_start_ticks(self))));
    return result;
  }

  /// lastErrno(): number — errno of the last SYSTEM_ERROR in this environment.
  Napi::Value LastErrno(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), last_errno_);
  }

  /// openRingProducer(name, onEvent, options?): RingProducer | number.
  Napi::Value OpenRingProducer(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    std::string name;
    DoorbellOptions options;
    if (!get_string(info, 0, "openRingProducer", "name", kMaxSegmentNameBytes * 4, &name)) {
      return Napi::Value();
    }
    if (!info[1].IsFunction()) {
      return throw_type_error(env, "openRingProducer: onEvent must be a function");
    }
    if (!get_doorbell_options(info, 2, "openRingProducer", &options, nullptr)) {
      return Napi::Value();
    }
    auto core = std::make_shared<ProducerCore>();
    int err = 0;
    Status s = RingProducer::open(name, &core->ring, &err);
    if (s != Status::kOk) return system_status(env, s, err);
    s = start_events(env, core, info[1].As<Napi::Function>(), Doorbell::Side::kProducer, options,
                     &err);
    if (s != Status::kOk) {
      core->close_native();
      core->release_tsfn();
      return system_status(env, s, err);
    }
    open_ends_->add(core);
    pending_producer = core;
    Napi::Object object = producer_ctor_.New({});
    pending_producer.reset();
    return object;
  }

  /// openRingConsumer(name, onEvent, options?): RingConsumer | number.
  Napi::Value OpenRingConsumer(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    std::string name;
    DoorbellOptions options;
    BellKind kind = BellKind::kFutex;
    if (!get_string(info, 0, "openRingConsumer", "name", kMaxSegmentNameBytes * 4, &name)) {
      return Napi::Value();
    }
    if (!info[1].IsFunction()) {
      return throw_type_error(env, "openRingConsumer: onEvent must be a function");
    }
    if (!get_doorbell_options(info, 2, "openRingConsumer", &options, &kind)) {
      return Napi::Value();
    }
    auto core = std::make_shared<ConsumerCore>();
    core->bell_kind = kind;
    core->name = name;
    int err = 0;
    Status s = RingConsumer::open(name, kind, &core->ring, &err);
    if (s != Status::kOk) return system_status(env, s, err);
    // The FIFO comes after the claim: a failed claim must not replace a live consumer's FIFO.
    // A producer only rings it once this consumer has announced a sleep, which is later.
    if (kind == BellKind::kPipe) s = create_pipe_bell(name, &core->pipe_fd, &err);
    options.watch_data = kind == BellKind::kFutex;
    if (s == Status::kOk) {
      s = start_events(env, core, info[1].As<Napi::Function>(), Doorbell::Side::kConsumer, options,
                       &err);
    }
    if (s != Status::kOk) {
      core->close_native();
      core->release_tsfn();
      return system_status(env, s, err);
    }
    open_ends_->add(core);
    pending_consumer = core;
    Napi::Object object = consumer_ctor_.New({});
    pending_consumer.reset();
    return object;
  }

  OpenEnds* open_ends_ = nullptr;  // owned by the cleanup hook
  Napi::FunctionReference producer_ctor_;
  Napi::FunctionReference consumer_ctor_;
  int last_errno_ = 0;
};

// ---- RingProducerWrap -------------------------------------------------------------------------

Napi::Function RingProducerWrap::Define(Napi::Env env) {
  return DefineClass(
      env, "RingProducer",
      {
          InstanceMethod<&RingProducerWrap::WriteBatch>("writeBatch"),
          InstanceMethod<&RingProducerWrap::WriteFrame>("writeFrame"),
          InstanceMethod<&RingProducerWrap::Reserve>("reserve"),
          InstanceMethod<&RingProducerWrap::Commit>("commit"),
          InstanceMethod<&RingProducerWrap::Abandon>("abandon"),
          InstanceMethod<&RingProducerWrap::Flush>("flush"),
          InstanceMethod<&RingProducerWrap::NotifyWhenWritable>("notifyWhenWritable"),
          InstanceMethod<&RingProducerWrap::KeepAlive>("keepAlive"),
          InstanceMethod<&RingProducerWrap::FreeBytes>("freeBytes"),
          InstanceMethod<&RingProducerWrap::CheckPeer>("checkPeer"),
          InstanceMethod<&RingProducerWrap::State>("state"),
          InstanceMethod<&RingProducerWrap::Close>("close"),
          InstanceAccessor<&RingProducerWrap::GetMaxContentBytes>("maxContentBytes"),
          InstanceAccessor<&RingProducerWrap::GetPending>("pending"),
          InstanceAccessor<&RingProducerWrap::GetClosed>("closed"),
      });
}

RingProducerWrap::RingProducerWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<RingProducerWrap>(info) {
  auto* addon = info.Env().GetInstanceData<DiscoAddon>();
  if (addon != nullptr) core_ = std::move(addon->pending_producer);
  if (!core_) {
    throw_type_error(info.Env(), "RingProducer objects come from openRingProducer()");
    return;
  }
  napi_type_tag_object(info.Env(), info.This(), &kProducerTag);
}

RingProducerWrap::~RingProducerWrap() {
  // Finalizer: native memory only. A reserved slot's view keeps the mapping alive by itself.
  if (!core_) return;
  core_->close_native();
  core_->release_tsfn();
}

void RingProducerWrap::drop_reservation() {
  if (reservation_.IsEmpty()) return;
  detach_view(&reservation_);
  core_->ring->abandon();
}

/// Whether this end may write now, checked before anything that may write chunks: kClosed once
/// closed; kPayloadDetached when the payload a pending chunked message borrows lost its memory
/// (detached: transferred, or its memory grown; or resized). The rest of that message cannot
/// be written, so this end closes (its consumer drops the part it has). Else kOk.
Status RingProducerWrap::writable(Napi::Env env) {
  if (core_->closed) return Status::kClosed;
  drop_borrowed_when_done();
  if (borrowed_.IsEmpty()) return Status::kOk;
  napi_typedarray_type type = napi_uint8_array;
  size_t length = 0;
  void* data = nullptr;
  napi_value buffer = nullptr;
  bool detached = true;
  const bool intact = napi_get_typedarray_info(env, borrowed_.Value(), &type, &length, &data,
                                               &buffer, nullptr) == napi_ok &&
                      napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok &&
                      !detached && data == borrowed_data_ && length == borrowed_length_;
  if (intact) return Status::kOk;
  borrowed_.Reset();
  core_->close_native();
  return Status::kPayloadDetached;
}

/// Lets go of the borrowed payload once the producer has copied all of it.
void RingProducerWrap::drop_borrowed_when_done() {
  if (!borrowed_.IsEmpty() && !core_->ring->borrowing()) borrowed_.Reset();
}

/// After a write that left the producer borrowing payloads[index] (argument 1): holds it.
void RingProducerWrap::keep_borrowed(const Napi::CallbackInfo& info, size_t index) {
  if (index == BatchEncoder::kNoPayload || index >= core_->payloads.size()) return;
  const Napi::Value payload = info[1].As<Napi::Array>().Get(static_cast<uint32_t>(index));
  borrowed_ = Napi::Reference<Napi::Value>::New(payload, 1);
  borrowed_data_ = core_->payloads[index].data;
  borrowed_length_ = core_->payloads[index].length;
}

Napi::Value RingProducerWrap::WriteBatch(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  TypedView staging;
  if (!get_typed_array(info, 0, napi_uint8_array, "writeBatch", "staging", &staging) ||
      !get_payloads(info, 1, "writeBatch", &core_->payloads)) {
    return Napi::Value();
  }
  if (Status w = writable(info.Env()); w != Status::kOk) return status_value(info.Env(), w);
  drop_reservation();
  size_t borrowed = BatchEncoder::kNoPayload;
  const auto* layout = static_cast<const uint8_t*>(staging.data);
  // A lane word other than 0 or 1 is refused by the encoder's own header check, so either
  // table will do for it.
  BatchEncoder& encoder = core_->encoders[staged_lane(layout, staging.length) == 1 ? 1 : 0];
  const Status s = encoder.write(*core_->ring, layout, staging.length, core_->payloads.data(),
                                 core_->payloads.size(), &borrowed);
  drop_borrowed_when_done();
  keep_borrowed(info, borrowed);
  core_->payloads.clear();
  return status_value(info.Env(), s);
}

Napi::Value RingProducerWrap::WriteFrame(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  TypedView frame;
  if (!get_typed_array(info, 0, napi_uint8_array, "writeFrame", "frame", &frame)) {
    return Napi::Value();
  }
  if (Status w = writable(info.Env()); w != Status::kOk) return status_value(info.Env(), w);
  drop_reservation();
  return status_value(
      info.Env(), core_->ring->write_frame(static_cast<const uint8_t*>(frame.data), frame.length));
}

Napi::Value RingProducerWrap::Reserve(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  double bytes = 0;
  if (!get_integer(info, 0, "reserve", "bytes", 1, 9007199254740991.0, &bytes)) {
    return Napi::Value();
  }
  if (Status w = writable(info.Env()); w != Status::kOk) return status_value(info.Env(), w);
  drop_reservation();
  uint8_t* content = nullptr;
  const Status s = core_->ring->reserve(static_cast<size_t>(bytes), &content);
  if (s != Status::kOk) return status_value(info.Env(), s);
  auto hint = std::make_shared<ViewHint>();
  hint->mapping = core_->ring->memory().owner;
  napi_value ab = nullptr;
  const Napi::Value view = make_view(info.Env(), content, static_cast<size_t>(bytes), hint, &ab);
  if (view.IsEmpty()) {
    core_->ring->abandon();
    return view;
  }
  reservation_ = Napi::Reference<Napi::Value>::New(Napi::Value(info.Env(), ab), 1);
  return view;
}

Napi::Value RingProducerWrap::Commit(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  double length = 0;
  if (!get_integer(info, 0, "commit", "length", 1, 9007199254740991.0, &length)) {
    return Napi::Value();
  }
  if (core_->closed) return status_value(info.Env(), Status::kClosed);
  if (reservation_.IsEmpty()) return status_value(info.Env(), Status::kInvalidArgument);
  detach_view(&reservation_);
  return status_value(info.Env(), core_->ring->commit(0, static_cast<size_t>(length)));
}

Napi::Value RingProducerWrap::Abandon(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  if (!core_->closed) drop_reservation();
  return info.Env().Undefined();
}

Napi::Value RingProducerWrap::Flush(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  if (Status w = writable(info.Env()); w != Status::kOk) return status_value(info.Env(), w);
  const Status s = core_->ring->flush();
  drop_borrowed_when_done();
  return status_value(info.Env(), s);
}

Napi::Value RingProducerWrap::NotifyWhenWritable(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  double bytes = 0;
  if (!get_integer(info, 0, "notifyWhenWritable", "bytes", 0, 9007199254740991.0, &bytes)) {
    return Napi::Value();
  }
  if (!core_->closed && core_->bell) {
    const uint64_t capacity = core_->ring->memory().capacity;
    const uint64_t want =
        static_cast<uint64_t>(bytes) < capacity ? static_cast<uint64_t>(bytes) : capacity;
    core_->bell->arm(core_->ring->tail(), want);
  }
  return info.Env().Undefined();
}

Napi::Value RingProducerWrap::KeepAlive(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  return keep_alive(info, *core_);
}

Napi::Value RingProducerWrap::FreeBytes(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  if (core_->closed) return Napi::Number::New(info.Env(), 0);
  return Napi::Number::New(info.Env(), static_cast<double>(core_->ring->free_bytes()));
}

Napi::Value RingProducerWrap::CheckPeer(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  if (core_->closed) return status_value(info.Env(), Status::kClosed);
  return status_value(info.Env(), core_->ring->check_consumer());
}

Napi::Value ring_state(Napi::Env env, const RingState& state) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("head", Napi::Number::New(env, static_cast<double>(state.head)));
  o.Set("tail", Napi::Number::New(env, static_cast<double>(state.tail)));
  o.Set("capacity", Napi::Number::New(env, static_cast<double>(state.capacity)));
  return o;
}

Napi::Value RingProducerWrap::State(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  return ring_state(info.Env(), core_->ring->state());
}

Napi::Value RingProducerWrap::Close(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  detach_view(&reservation_);
  borrowed_.Reset();
  core_->close_native();
  core_->release_tsfn();
  return info.Env().Undefined();
}

Napi::Value RingProducerWrap::GetMaxContentBytes(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  return Napi::Number::New(info.Env(), static_cast<double>(core_->ring->max_content_bytes()));
}

Napi::Value RingProducerWrap::GetPending(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  return Napi::Boolean::New(info.Env(), core_->ring->has_pending());
}

Napi::Value RingProducerWrap::GetClosed(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  return Napi::Boolean::New(info.Env(), core_->closed);
}

// ---- RingConsumerWrap -------------------------------------------------------------------------

Napi::Function RingConsumerWrap::Define(Napi::Env env) {
  return DefineClass(env, "RingConsumer",
                     {
                         InstanceMethod<&RingConsumerWrap::BindOutput>("bindOutput"),
                         InstanceMethod<&RingConsumerWrap::ReadBatch>("readBatch"),
                         InstanceMethod<&RingConsumerWrap::Release>("release"),
                         InstanceMethod<&RingConsumerWrap::DoorbellFd>("doorbellFd"),
                         InstanceMethod<&RingConsumerWrap::KeepAlive>("keepAlive"),
                         InstanceMethod<&RingConsumerWrap::PollWords>("pollWords"),
                         InstanceMethod<&RingConsumerWrap::AutoArm>("autoArm"),
                         InstanceMethod<&RingConsumerWrap::Arm>("arm"),
                         InstanceMethod<&RingConsumerWrap::Disarm>("disarm"),
                         InstanceMethod<&RingConsumerWrap::CheckPeer>("checkPeer"),
                         InstanceMethod<&RingConsumerWrap::State>("state"),
                         InstanceMethod<&RingConsumerWrap::Close>("close"),
                         InstanceAccessor<&RingConsumerWrap::GetClosed>("closed"),
                     });
}

RingConsumerWrap::RingConsumerWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<RingConsumerWrap>(info) {
  auto* addon = info.Env().GetInstanceData<DiscoAddon>();
  if (addon != nullptr) core_ = std::move(addon->pending_consumer);
  if (!core_) {
    throw_type_error(info.Env(), "RingConsumer objects come from openRingConsumer()");
    return;
  }
  napi_type_tag_object(info.Env(), info.This(), &kConsumerTag);
  make_spare(info.Env());
}

RingConsumerWrap::~RingConsumerWrap() {
  // Finalizer: native memory only. A view of the outstanding batch may still be reachable from
  // JS: a reassembled message's buffer goes to the view's hint (freed with the view), ring
  // bytes stay mapped through it, and the closed end keeps the producer from reusing them.
  if (!core_) return;
  if (has_batch_ && batch_.reassembled && hint_) hint_->owned = core_->ring->take_message();
  core_->close_native();
  core_->release_tsfn();
}

void RingConsumerWrap::release_batch() {
  if (!has_batch_) return;
  detach_view(&view_);
  has_batch_ = false;
  hint_.reset();
  // Only a batch out of order could fail here, and there is only ever one outstanding.
  (void)core_->ring->release(batch_);
}

/// bindOutput(envelopes, headers, strings, frames): allocates the six output arrays of a decode
/// with room for that many of each, makes readBatch(maxBytes) write into them from now on, and
/// returns them as { summary, frames, envelopes, epochs, headers, strings }. Called again (to
/// grow), it replaces them; arrays handed out before stay valid memory but are no longer written.
Napi::Value RingConsumerWrap::BindOutput(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  return bind_output(info, "bindOutput", &output_, &output_target_);
}

/// readBatch(maxBytes) into the arrays of bindOutput(), or readBatch(summary, frames, envelopes,
/// epochs, headers, strings, maxBytes) into the arrays given (checked on every call).
Napi::Value RingConsumerWrap::ReadBatch(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  const Napi::Env env = info.Env();
  DecodeTarget target;
  double max_bytes = 0;
  if (info.Length() <= 1) {
    if (!output_) return throw_type_error(env, "readBatch: call bindOutput() first");
    if (!get_integer(info, 0, "readBatch", "maxBytes", 1, 9007199254740991.0, &max_bytes)) {
      return Napi::Value();
    }
    target = output_target_;
  } else if (!get_decode_target(info, 0, "readBatch", &target) ||
             !get_integer(info, 6, "readBatch", "maxBytes", 1, 9007199254740991.0, &max_bytes)) {
    return Napi::Value();
  }
  release_batch();
  if (core_->closed) return status_value(env, Status::kClosed);
  ConsumerCore& c = *core_;
  c.spans.resize(target.frame_capacity);
  RecordBatch batch;
  Status s = Status::kOk;
  for (;;) {
    c.decoder.begin(target);
    s = c.ring->read_batch(c.spans.size(), static_cast<size_t>(max_bytes), c.spans.data(), &batch,
                           &BatchDecoder::visit, &c.decoder);
    // Armed, or records arrived meanwhile: read them instead.
    if (s != Status::kRingEmpty || !c.auto_arm || c.arm()) break;
  }
  publish_read_position();
  if (s != Status::kOk) return status_value(env, s);
  c.decoder.finish(batch.reassembled);
  const RingMemory& memory = c.ring->memory();
  // As integers: a reassembled message lies in heap memory, not in the mapping.
  const auto spare_at = reinterpret_cast<uintptr_t>(memory.data) + spare_start_;
  const auto at = reinterpret_cast<uintptr_t>(batch.region);
  const size_t offset = at - spare_at;  // within the spare when the checks below hold
  if (!spare_.IsEmpty() && !batch.reassembled && at >= spare_at && offset <= spare_bytes_ &&
      batch.region_bytes <= spare_bytes_ - offset) {
    napi_value view = nullptr;
    if (napi_create_typedarray(env, napi_uint8_array, batch.region_bytes, spare_.Value(), offset,
                               &view) != napi_ok) {
      (void)c.ring->release(batch);
      return Napi::Value();
    }
    view_ = std::move(spare_);
    hint_ = std::move(spare_hint_);
    batch_ = batch;
    has_batch_ = true;
    return Napi::Value(env, view);
  }
  auto hint = std::make_shared<ViewHint>();
  hint->mapping = memory.owner;
  napi_value ab = nullptr;
  const Napi::Value view =
      make_view(env, const_cast<uint8_t*>(batch.region), batch.region_bytes, hint, &ab);
  if (view.IsEmpty()) {
    (void)c.ring->release(batch);
    return view;
  }
  view_ = Napi::Reference<Napi::Value>::New(Napi::Value(env, ab), 1);
  hint_ = std::move(hint);
  batch_ = batch;
  has_batch_ = true;
  return view;
}

/// Makes the spare ArrayBuffer for the next read, unless there is one or the end is closed.
/// On failure (no memory, a data area above the ArrayBuffer limit) the next read makes its own.
///
/// V8 counts the bytes of every ArrayBuffer as external memory and starts a full garbage
/// collection whenever that count grows by more than 64 MiB at once. A spare over the whole
/// data area of a larger ring would cost one per batch (a 128 MiB ring carried 64 KiB events
/// at a third of a 4 MiB ring's rate, with a collection every few batches), so above
/// kSpareWindowBytes the spare covers that much from the read position, where the next batch
/// begins (a batch does not wrap; one that does not fit gets a view of its own).
void RingConsumerWrap::make_spare(Napi::Env env) {
  if (!spare_.IsEmpty() || core_->closed) return;
  const RingMemory& memory = core_->ring->memory();
  uint64_t start = 0;
  uint64_t bytes = memory.capacity;
  if (bytes > kSpareWindowBytes) {
    start = core_->ring->read_position() & (memory.capacity - 1);
    bytes = std::min(memory.capacity - start, kSpareWindowBytes);
  }
  auto hint = std::make_shared<ViewHint>();
  hint->mapping = memory.owner;
  napi_value ab = make_external(env, memory.data + start, static_cast<size_t>(bytes), hint);
  if (ab == nullptr) {
    napi_value ignored = nullptr;
    (void)napi_get_and_clear_last_exception(env, &ignored);
    return;
  }
  spare_ = Napi::Reference<Napi::Value>::New(Napi::Value(env, ab), 1);
  spare_hint_ = std::move(hint);
  spare_start_ = start;
  spare_bytes_ = bytes;
}

Napi::Value RingConsumerWrap::Release(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  release_batch();
  make_spare(info.Env());  // after the batch's handler: off the path from a write to its read
  return info.Env().Undefined();
}

Napi::Value RingConsumerWrap::DoorbellFd(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  if (core_->closed || core_->pipe_fd < 0) return Napi::Number::New(info.Env(), -1);
  const int fd = ::fcntl(core_->pipe_fd, F_DUPFD_CLOEXEC, 0);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value RingConsumerWrap::KeepAlive(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  return keep_alive(info, *core_);
}

void RingConsumerWrap::publish_read_position() noexcept {
  if (!read_words_) return;
  const uint64_t position = core_->ring->read_position();
  auto* words = reinterpret_cast<uint32_t*>(read_words_->owned);
  words[0] = static_cast<uint32_t>(position);
  words[1] = static_cast<uint32_t>(position >> 32);
}

/// pollWords(): { tail, producerClosed, readPosition } — Uint32Arrays for a poll from JS that
/// crosses no boundary: the segment's tail (low, high word) and producer_closed, views over the
/// header page (ring.h) that keep the mapping alive, and this end's read position (low, high),
/// which readBatch keeps current. The ring has records (or news) to read when a load of tail
/// differs from the read position, or producer_closed is set. Loading the low word first makes
/// a torn tail harmless: tail only grows, by at most the capacity (<= 2^32) past the read
/// position.
Napi::Value RingConsumerWrap::PollWords(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  const Napi::Env env = info.Env();
  if (!read_words_) {
    auto words = std::make_shared<ViewHint>();
    words->owned = static_cast<uint8_t*>(std::calloc(2, sizeof(uint32_t)));
    if (words->owned == nullptr) return throw_type_error(env, "pollWords: out of memory");
    read_words_ = std::move(words);
    publish_read_position();
  }
  auto header_hint = std::make_shared<ViewHint>();
  header_hint->mapping = core_->ring->memory().owner;
  auto* header = reinterpret_cast<uint8_t*>(core_->ring->memory().header);
  struct Part {
    const char* name;
    const std::shared_ptr<ViewHint>* hint;
    uint8_t* base;
    size_t bytes;
    size_t offset;
    size_t words;
  };
  const Part parts[] = {
      {"tail", &header_hint, header, kRingHeaderBytes, offsetof(RingHeader, tail), 2},
      {"producerClosed", &header_hint, header, kRingHeaderBytes,
       offsetof(RingHeader, producer_closed), 1},
      {"readPosition", &read_words_, read_words_->owned, 2 * sizeof(uint32_t), 0, 2}};
  Napi::Object out = Napi::Object::New(env);
  napi_value header_ab = nullptr;
  for (const Part& p : parts) {
    napi_value ab = p.hint == &header_hint ? header_ab : nullptr;
    if (ab == nullptr) {
      ab = make_external(env, p.base, p.bytes, *p.hint);
      if (ab == nullptr) return Napi::Value();
      if (p.hint == &header_hint) header_ab = ab;
    }
    napi_value array = nullptr;
    if (napi_create_typedarray(env, napi_uint32_array, p.words, ab, p.offset, &array) != napi_ok) {
      return Napi::Value();
    }
    out.Set(p.name, Napi::Value(env, array));
  }
  return out;
}

/// autoArm(on): whether a readBatch that finds the ring empty arms the doorbell (default true).
/// A reader that polls turns it off and calls arm() when it stops polling.
Napi::Value RingConsumerWrap::AutoArm(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  if (!info[0].IsBoolean()) return throw_type_error(info.Env(), "autoArm: on must be a boolean");
  core_->auto_arm = info[0].As<Napi::Boolean>().Value();
  return info.Env().Undefined();
}

/// arm(): RING_EMPTY when armed (the doorbell rings when records arrive or the producer
/// closes), OK when they did meanwhile (read them; nothing armed), CLOSED.
Napi::Value RingConsumerWrap::Arm(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  if (core_->closed) return status_value(info.Env(), Status::kClosed);
  return status_value(info.Env(), core_->arm() ? Status::kRingEmpty : Status::kOk);
}

/// disarm(): takes back an arm; see doorbell.h. A wake-up already on its way still comes.
Napi::Value RingConsumerWrap::Disarm(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  if (!core_->closed) core_->disarm();
  return info.Env().Undefined();
}

Napi::Value RingConsumerWrap::CheckPeer(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  if (core_->closed) return status_value(info.Env(), Status::kClosed);
  return status_value(info.Env(), core_->ring->check_producer());
}

Napi::Value RingConsumerWrap::State(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  return ring_state(info.Env(), core_->ring->state());
}

Napi::Value RingConsumerWrap::Close(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  release_batch();
  spare_.Reset();
  spare_hint_.reset();
  core_->close_native();
  core_->release_tsfn();
  return info.Env().Undefined();
}

Napi::Value RingConsumerWrap::GetClosed(const Napi::CallbackInfo& info) {
  if (!usable(info)) return Napi::Value();
  return Napi::Boolean::New(info.Env(), core_->closed);
}

// ---- BatchEncoderWrap, FrameDecoderWrap ---------------------------------------------------------

Napi::Function BatchEncoderWrap::Define(Napi::Env env) {
  return DefineClass(env, "BatchEncoder",
                     {InstanceMethod<&BatchEncoderWrap::Encode>("encode"),
                      InstanceMethod<&BatchEncoderWrap::EncodeInto>("encodeInto")});
}

BatchEncoderWrap::BatchEncoderWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<BatchEncoderWrap>(info) {
  napi_type_tag_object(info.Env(), info.This(), &kEncoderTag);
}

/// Frames whose bound is at most this are built in the encoder's scratch block and copied out
/// at their exact length; larger ones are built straight into their own ArrayBuffer.
constexpr size_t kEncodeScratchMaxBytes = size_t{1} << 20;
/// Bytes left free in front of a frame copied out of scratch into memory of its own.
constexpr size_t kOwnFrameHeadroomBytes = 8;

/// The bound overestimates small envelopes about threefold, and a link keeps its frames until
/// they are acknowledged: so a frame up to kEncodeScratchMaxBytes is built in a reused scratch
/// block and copied out at its exact length (a copy of the frame is cheaper than zero-filling
/// its bound, and the memory held is what the link accounts for). A larger frame, mostly
/// payload, is built into a buffer of its bound, the frame at its end.
Status BatchEncoderWrap::build(const Napi::CallbackInfo& info, const char* fn, Built* out,
                               uint8_t* given, size_t given_bytes) {
  TypedView staging;
  if (!get_typed_array(info, 0, napi_uint8_array, fn, "staging", &staging) ||
      !get_payloads(info, 1, fn, &payloads_)) {
    return Status::kInvalidArgument;
  }
  PreparedBatch b;
  Status s = encoder_.prepare(static_cast<const uint8_t*>(staging.data), staging.length,
                              payloads_.data(), payloads_.size(), &b);
  if (s != Status::kOk) {
    payloads_.clear();
    return s;
  }
  const auto bound = static_cast<size_t>(b.bound);
  size_t offset = 0;
  uint8_t* region = nullptr;
  size_t region_bytes = bound;
  if (given != nullptr && bound <= given_bytes) {
    // The caller's memory: the frame ends at the region's end, nothing is copied after.
    region = given;
    region_bytes = given_bytes;
    out->in_place = true;
  } else if (bound <= kEncodeScratchMaxBytes) {
    if (scratch_.size() * sizeof(uint64_t) < bound) scratch_.resize(bound / sizeof(uint64_t));
    region = reinterpret_cast<uint8_t*>(scratch_.data());
  } else {
    // A Node Buffer, not an ArrayBuffer: its memory is not zero-filled first (for a 1 MiB
    // frame that fill cost a third of the encode), and the builder writes every byte the frame
    // covers.
    // kOwnFrameHeadroomBytes in front, as for the copies out of scratch (own_frame).
    const Napi::Buffer<uint8_t> block =
        Napi::Buffer<uint8_t>::New(info.Env(), kOwnFrameHeadroomBytes + bound);
    if (info.Env().IsExceptionPending()) {
      payloads_.clear();
      return Status::kInvalidArgument;
    }
    out->heap = block.ArrayBuffer();
    out->heap_offset = block.ByteOffset() + kOwnFrameHeadroomBytes;
    region = block.Data() + kOwnFrameHeadroomBytes;
  }
  s = encoder_.build(b, payloads_.data(), payloads_.size(), region, region_bytes, &offset,
                     &out->length);
  payloads_.clear();
  out->frame = region + offset;
  out->heap_offset += offset;
  return s;
}

Napi::Value BatchEncoderWrap::own_frame(Napi::Env env, const Built& b) {
  if (!b.heap.IsEmpty()) return Napi::Uint8Array::New(env, b.length, b.heap, b.heap_offset);
  // Node allocates this Buffer outside its pool, so it starts 8-byte aligned; the frame goes
  // kOwnFrameHeadroomBytes into it, leaving room for a message stream's lead in front (the
  // link writes it).
  const Napi::Buffer<uint8_t> block =
      Napi::Buffer<uint8_t>::New(env, kOwnFrameHeadroomBytes + b.length);
  if (env.IsExceptionPending()) return Napi::Value();
  std::memcpy(block.Data() + kOwnFrameHeadroomBytes, b.frame, b.length);
  return Napi::Uint8Array::New(env, b.length, block.ArrayBuffer(),
                               block.ByteOffset() + kOwnFrameHeadroomBytes);
}

/// encode(staging, payloads?): Uint8Array | number — the sealed frame in fresh memory, 8-byte
/// aligned, or a status.
Napi::Value BatchEncoderWrap::Encode(const Napi::CallbackInfo& info) {
  if (!check_this(info, kEncoderTag, "BatchEncoder")) return Napi::Value();
  const Napi::Env env = info.Env();
  Built built;
  const Status s = build(info, "encode", &built);
  if (s == Status::kInvalidArgument && env.IsExceptionPending()) return Napi::Value();
  if (s != Status::kOk) return status_value(env, s);
  return own_frame(env, built);
}

/// encodeInto(staging, payloads, out, start, end): number | Uint8Array — builds the sealed
/// frame straight into out[start .. end), ending at `end`, and returns the index where it
/// begins when its bound fits there (no copy: creating a JS buffer per frame costs more than
/// building a small one, so a link cuts frames from blocks it reuses); else returns the frame
/// in fresh memory as `encode` does. A failure returns minus its status. `start` and `end`
/// must point at 8-byte aligned memory, start <= end. Bytes of the region outside the frame
/// may be overwritten.
Napi::Value BatchEncoderWrap::EncodeInto(const Napi::CallbackInfo& info) {
  if (!check_this(info, kEncoderTag, "BatchEncoder")) return Napi::Value();
  const Napi::Env env = info.Env();
  TypedView out;
  size_t start = 0;
  size_t end = 0;
  if (!get_typed_array(info, 2, napi_uint8_array, "encodeInto", "out", &out) ||
      !get_aligned_index(info, 3, "encodeInto", "start", out, &start) ||
      !get_aligned_index(info, 4, "encodeInto", "end", out, &end)) {
    return Napi::Value();
  }
  if (start > end) return throw_type_error(env, "encodeInto: start must not be after end");
  uint8_t* const base = static_cast<uint8_t*>(out.data);
  Built built;
  const Status s = build(info, "encodeInto", &built, base + start, end - start);
  if (s == Status::kInvalidArgument && env.IsExceptionPending()) return Napi::Value();
  if (s != Status::kOk) return Napi::Number::New(env, -static_cast<double>(static_cast<int>(s)));
  if (built.in_place) return Napi::Number::New(env, static_cast<double>(built.frame - base));
  return own_frame(env, built);
}

Napi::Function FrameDecoderWrap::Define(Napi::Env env) {
  return DefineClass(env, "FrameDecoder",
                     {InstanceMethod<&FrameDecoderWrap::Decode>("decode"),
                      InstanceMethod<&FrameDecoderWrap::BindOutput>("bindOutput")});
}

FrameDecoderWrap::FrameDecoderWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<FrameDecoderWrap>(info) {
  napi_type_tag_object(info.Env(), info.This(), &kDecoderTag);
}

/// bindOutput(envelopes, headers, strings, frames): the arrays decode(frame) fills (see
/// bind_output); a later call replaces them.
Napi::Value FrameDecoderWrap::BindOutput(const Napi::CallbackInfo& info) {
  if (!check_this(info, kDecoderTag, "FrameDecoder")) return Napi::Value();
  return bind_output(info, "bindOutput", &output_, &output_target_);
}

/// decode(frame) into the arrays of bindOutput(), or decode(frame, summary, frames, envelopes,
/// epochs, headers, strings) into the arrays given (checked on every call): number — verifies
/// the frame and decodes it; offsets in the outputs are relative to `frame`.
Napi::Value FrameDecoderWrap::Decode(const Napi::CallbackInfo& info) {
  if (!check_this(info, kDecoderTag, "FrameDecoder")) return Napi::Value();
  TypedView frame;
  DecodeTarget target;
  if (!get_typed_array(info, 0, napi_uint8_array, "decode", "frame", &frame)) {
    return Napi::Value();
  }
  if (info.Length() == 1) {
    if (!output_) return throw_type_error(info.Env(), "decode: call bindOutput() first");
    target = output_target_;
  } else if (!get_decode_target(info, 1, "decode", &target)) {
    return Napi::Value();
  }
  const auto* bytes = static_cast<const uint8_t*>(frame.data);
  Status s = verify_frame(bytes, frame.length);
  if (s != Status::kOk) return status_value(info.Env(), s);
  decoder_.begin(target);
  s = decoder_.decode(RecordSpan{bytes, static_cast<uint32_t>(frame.length)}, 0, bytes);
  if (s == Status::kOk) decoder_.finish(false);
  return status_value(info.Env(), s);
}

}  // namespace disco

using disco::DiscoAddon;
NODE_API_NAMED_ADDON(disco_native, DiscoAddon)
