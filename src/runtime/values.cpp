#include "runtime/values.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstdio>
#include <cstring>

#include "abi/layout.hpp"
#include "base/log.hpp"

namespace pyinspect {

namespace {
constexpr int64_t kMaxItems = 1 << 20;  // a length beyond this is not believed


// Python 2's repr of a unicode string: every character past ASCII escaped (\xe9, \u20ac).
std::string escape_non_ascii(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    int n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    uint32_t cp = c & (0x7f >> n);
    for (int k = 1; k < n && i + static_cast<size_t>(k) < s.size(); ++k) cp = cp << 6 | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    i += static_cast<size_t>(n);
    char b[16];
    if (cp < 0x100)
      std::snprintf(b, sizeof b, "\\x%02x", cp);
    else if (cp < 0x10000)
      std::snprintf(b, sizeof b, "\\u%04x", cp);
    else
      std::snprintf(b, sizeof b, "\\U%08x", cp);
    out += b;
  }
  return out;
}

// As Python writes a str literal: single quotes unless the text has one and no double quote;
// backslashes, quotes and control characters escaped. `cut`: the text went on.
std::string quote(const std::string& s, bool cut, const char* prefix = "") {
  char q = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out = prefix;
  out += q;
  for (unsigned char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c == static_cast<unsigned char>(q)) {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
          char b[8];
          std::snprintf(b, sizeof b, "\\x%02x", c);
          out += b;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  if (cut) out += "...";
  out += q;
  return out;
}

// A float as Python's repr writes it: the shortest digits that read back the same value, in
// fixed notation when the decimal exponent is from -4 to 15 (with ".0" for a whole number),
// otherwise as d.ddde+XX.
std::string float_text(double v) {
  if (v != v) return "nan";
  if (v == __builtin_inf()) return "inf";
  if (v == -__builtin_inf()) return "-inf";
  char b[64];
  auto [end, ec] = std::to_chars(b, b + sizeof b, v, std::chars_format::scientific);
  if (ec != std::errc()) return "?";
  std::string sci(b, end);  // [-]d[.ddd]e[+-]XX
  bool neg = sci[0] == '-';
  if (neg) sci = sci.substr(1);
  size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  int exp = std::atoi(sci.c_str() + e + 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      std::string ip = digits.substr(0, std::min<size_t>(digits.size(), static_cast<size_t>(exp) + 1));
      while (ip.size() < static_cast<size_t>(exp) + 1) ip += '0';
      std::string fp = digits.size() > static_cast<size_t>(exp) + 1 ? digits.substr(static_cast<size_t>(exp) + 1) : "0";
      out = ip + "." + fp;
    } else {
      out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    }
  } else {
    out = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
    char x[16];
    std::snprintf(x, sizeof x, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += x;
  }
  return (neg ? "-" : "") + out;
}

class Repr {
 public:
  Repr(const ObjectReader& r, const ReprLimits& lim) : r_(r), l_(r.layout()), t_(r.types()), lim_(lim) {}

  // The type's name as a person reads it: module.qualname for a class defined in Python (its
  // __module__ when not builtins), tp_name for the others.
  std::string type_name(RemoteAddr type) {
    auto flags = r_.type_flags(type);
    if (flags && (*flags & tpflags::kHeapType)) {
      std::string name;
      if (l_.has(F::ht_qualname))
        if (auto q = r_.memory().read_ptr(type + l_.off(F::ht_qualname)))
          if (auto s = r_.read_str(*q, 200)) name = *s;
      if (name.empty()) name = r_.type_name(type).value_or("?");
      if (auto dict = r_.memory().read_ptr(type + l_.require(F::tp_dict)); dict && !dict->null())
        if (auto mod = r_.dict_get(*dict, "__module__"))
          if (auto m = r_.read_str(*mod, 200); m && *m != r_.layout().facts().builtins_module) name = *m + "." + name;
      return name;
    }
    return r_.type_name(type).value_or("?");
  }

  ValueRepr of(RemoteAddr obj, int depth) {
    ValueRepr v;
    if (obj.null()) return {"NULL", ""};
    if (obj == t_.none) return {"None", "NoneType"};
    auto type = r_.type_of(obj);
    if (!type) return {"<unreadable object at " + log::hex(obj.value()) + ">", ""};
    v.type = type_name(*type);
    v.repr = text(obj, *type, v.type, depth);
    return v;
  }

 private:
  std::string text(RemoteAddr obj, RemoteAddr type, const std::string& tname, int depth) {
    const Memory& m = r_.memory();
    auto at = " at " + log::hex(obj.value()) + ">";
    if (type == t_.bool_) {
      auto v = r_.read_int(obj);
      return v ? (*v ? "True" : "False") : "<bool" + at;
    }
    if (type == t_.long_ || (!t_.int27.null() && type == t_.int27)) {
      if (auto v = r_.read_int(obj)) return std::to_string(*v);
      return "<int too large to show" + at;
    }
    if (type == t_.float_) {
      if (auto v = m.read_as<double>(obj + l_.require(F::float_fval))) return float_text(*v);
      return "<float" + at;
    }
    if (!t_.str27.null() && type == t_.str27) return bytes_text(obj, at, "", F::str_sval);  // 2.7 str: bytes
    if (type == t_.unicode) {
      auto s = r_.read_str(obj, lim_.chars + 1);
      if (!s) return "<str" + at;
      int64_t len = str_length(obj, type, *s);
      bool cut = len > static_cast<int64_t>(lim_.chars);
      bool unicode27 = !t_.str27.null() && type == t_.unicode;
      std::string out = quote(cut ? truncate_utf8(*s, lim_.chars) : *s, cut, unicode27 ? "u" : "");
      if (unicode27) out = escape_non_ascii(out);
      if (cut) out += " (" + std::to_string(len) + " characters)";
      return out;
    }
    if (!t_.bytes.null() && type == t_.bytes && t_.str27.null()) return bytes_text(obj, at, "b", F::bytes_sval);
    if (type == t_.tuple || type == t_.list) {
      bool tuple = type == t_.tuple;
      auto n = m.read_as<int64_t>(obj + l_.off(F::ob_size));
      if (!n || *n < 0 || *n > kMaxItems) return "<" + tname + at;
      RemoteAddr items = obj + l_.require(F::tuple_item);
      if (!tuple) {
        auto p = m.read_ptr(obj + l_.require(F::list_item));
        if (!p) return "<list" + at;
        items = *p;
      }
      std::vector<std::string> parts;
      for (int64_t i = 0; i < std::min<int64_t>(*n, static_cast<int64_t>(lim_.items)); ++i) {
        auto p = m.read_ptr(items + 8 * i);
        parts.push_back(p ? item(l_.facts().untag(p->value()), depth) : "?");
      }
      return sequence(tuple ? "(" : "[", tuple ? ")" : "]", parts, *n, tuple && *n == 1);
    }
    if (type == t_.dict) {
      auto n = m.read_as<int64_t>(obj + l_.require(F::dict_used));
      if (!n || *n < 0 || *n > kMaxItems) return "<dict" + at;
      std::vector<std::string> parts;
      r_.dict_items(obj, [&](RemoteAddr k, RemoteAddr v) {
        parts.push_back(item(k, depth) + ": " + item(v, depth));
        return parts.size() < lim_.items;
      });
      return sequence("{", "}", parts, *n, false);
    }
    if (type == t_.set || type == t_.frozenset) {
      auto n = m.read_as<int64_t>(obj + l_.require(F::set_used));
      if (!n) return "<" + tname + at;
      return "<" + tname + " of " + std::to_string(*n) + (*n == 1 ? " item>" : " items>");
    }
    if (type == t_.function) {
      F name = l_.has(F::func_qualname) ? F::func_qualname : F::func_name;
      if (auto p = m.read_ptr(obj + l_.require(name)))
        if (auto s = r_.read_str(*p, 200)) return "<function " + *s + at;
      return "<function" + at;
    }
    if (type == t_.module) {
      if (l_.has(F::md_name))
        if (auto p = m.read_ptr(obj + l_.off(F::md_name)))
          if (auto s = r_.read_str(*p, 200)) return "<module '" + *s + "'>";
      return "<module" + at;
    }
    if (type == t_.type) return "<class '" + type_name(obj) + "'>";
    // Anything else: its type, address and, for an instance with attributes, the first few.
    std::string out = "<" + tname + " at " + log::hex(obj.value());
    auto shape = r_.type_shape(type);
    auto storage = shape ? r_.instance_storage(obj, *shape) : std::nullopt;
    if (storage && depth > 0) {
      std::vector<std::string> attrs;
      size_t total = 0;
      auto add = [&](RemoteAddr k, RemoteAddr v) {
        ++total;
        if (attrs.size() < lim_.items)
          if (auto name = r_.read_str(k, 60)) attrs.push_back(*name + "=" + item(v, depth));
        return total < 10000;
      };
      if (!storage->dict.null())
        r_.dict_items(storage->dict, add);
      else if (!storage->values.null())
        r_.keys_values_items(storage->keys, storage->values, add);
      for (const auto& a : attrs) out += " " + a;
      if (total > attrs.size()) out += " ...";
    }
    return out + ">";
  }

  // bytes (2.7: str): quoted as Python writes them, everything past ASCII as \xNN, cut by bytes.
  std::string bytes_text(RemoteAddr obj, const std::string& at, const char* prefix, F sval) {
    const Memory& m = r_.memory();
    auto n = m.read_as<int64_t>(obj + l_.off(F::ob_size));
    if (!n || *n < 0 || *n > (int64_t{1} << 40)) return std::string("<bytes") + at;
    auto b = m.read_bytes(obj + l_.require(sval), std::min<int64_t>(*n, static_cast<int64_t>(lim_.chars)));
    if (!b) return std::string("<bytes") + at;
    bool cut = *n > static_cast<int64_t>(lim_.chars);
    std::string out = quote(std::string(b->begin(), b->end()), cut, prefix);
    for (size_t i = 0; i < out.size(); ++i)
      if (static_cast<unsigned char>(out[i]) >= 0x80) {
        char h[8];
        std::snprintf(h, sizeof h, "\\x%02x", static_cast<unsigned char>(out[i]));
        out.replace(i, 1, h);
        i += 3;
      }
    if (cut) out += " (" + std::to_string(*n) + " bytes)";
    return out;
  }

  // An item of a container or an attribute: one level less; past the last level, numbers,
  // strings, True/False and None are still shown (they cost a read or two), the rest is "...".
  std::string item(RemoteAddr obj, int depth) {
    if (depth > 0) return of(obj, depth - 1).repr;
    if (obj == t_.none) return "None";
    auto type = r_.type_of(obj);
    bool scalar = type && (*type == t_.bool_ || *type == t_.long_ || *type == t_.float_ || *type == t_.unicode ||
                           (!t_.int27.null() && *type == t_.int27) || (!t_.str27.null() && *type == t_.str27) ||
                           (!t_.bytes.null() && *type == t_.bytes));
    return scalar ? of(obj, 0).repr : "...";
  }

  std::string sequence(const char* open, const char* close, const std::vector<std::string>& parts, int64_t n,
                       bool one_tuple) {
    std::string out = open;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
    if (one_tuple) out += ",";
    if (static_cast<int64_t>(parts.size()) < n) out += parts.empty() ? "..." : ", ...";
    out += close;
    if (static_cast<int64_t>(parts.size()) < n) out += " (" + std::to_string(n) + " items)";
    return out;
  }

  int64_t str_length(RemoteAddr obj, RemoteAddr type, const std::string& read) {
    F f = (!t_.str27.null() && type == t_.unicode) ? F::uni27_length : F::uni_length;
    if (!t_.str27.null() && type == t_.str27) f = F::ob_size;
    if (l_.has(f))
      if (auto n = r_.memory().read_as<int64_t>(obj + l_.off(f)); n && *n >= 0) return *n;
    return static_cast<int64_t>(read.size());
  }

  static std::string truncate_utf8(const std::string& s, size_t chars) {
    size_t i = 0, n = 0;
    while (i < s.size() && n < chars) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      i += c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
      ++n;
    }
    return s.substr(0, std::min(i, s.size()));
  }

  const ObjectReader& r_;
  const Layout& l_;
  const TypeAddrs& t_;
  ReprLimits lim_;
};
}  // namespace

ReprLimits ReprLimits::level(int n) {
  ReprLimits l;
  // -llll and beyond are -lll: each level multiplies the work (items to the power of depth).
  for (int i = 1; i < std::min(n, 3); ++i) {
    l.chars *= 4;
    l.items *= 2;
    l.depth += 1;
  }
  return l;
}

ValueRepr value_repr(const ObjectReader& r, RemoteAddr obj, const ReprLimits& limits) {
  return Repr(r, limits).of(obj, limits.depth);
}

std::vector<FrameSlot> frame_slots(const ObjectReader& r, const RawFrame& f) {
  const Layout& l = r.layout();
  const Facts& facts = l.facts();
  const Memory& m = r.memory();
  std::vector<FrameSlot> out;
  bool objects = facts.frames == Facts::Frames::FrameObjects;
  RemoteAddr code = f.code;
  int64_t n = 0, nlocals = 0, nargs = 0;
  std::vector<uint8_t> kinds;
  if (auto a = m.read_as<int32_t>(code + l.require(F::co_argcount))) nargs = *a;
  if (objects) {
    nlocals = m.read_as<int32_t>(code + l.require(F::co_nlocals)).value_or(-1);
    n = nlocals;
    for (F names : {F::co_cellvars, F::co_freevars}) {
      if (!l.has(names)) continue;
      if (auto t = m.read_ptr(code + l.off(names)); t && !t->null()) {
        int64_t k = m.read_as<int64_t>(*t + l.off(F::ob_size)).value_or(-1);
        if (k < 0 || k > 100000) return out;
        n += k;
      }
    }
  } else {
    n = m.read_as<int32_t>(code + l.require(F::co_nlocalsplus)).value_or(-1);
    if (auto k = m.read_ptr(code + l.require(F::co_localspluskinds)); k && n > 0 && n <= 100000)
      if (auto b = m.read_bytes(*k + l.require(F::bytes_sval), static_cast<size_t>(n))) kinds = std::move(*b);
  }
  if (n <= 0 || n > 100000) return out;
  std::vector<uint64_t> slots(static_cast<size_t>(n));
  RemoteAddr base = f.frame + l.require(objects ? F::fo_localsplus : F::if_localsplus);
  if (!m.read(base, slots.data(), slots.size() * 8)) return out;
  // co_localspluskinds (3.11+): CO_FAST_HIDDEN 0x10, CO_FAST_LOCAL 0x20, CO_FAST_CELL 0x40,
  // CO_FAST_FREE 0x80 (Include/internal/pycore_code.h).
  constexpr uint8_t kHidden = 0x10, kCell = 0x40, kFree = 0x80;
  for (int64_t i = 0; i < n; ++i) {
    uint8_t kind = static_cast<size_t>(i) < kinds.size() ? kinds[static_cast<size_t>(i)] : 0;
    if (kind & kHidden) continue;  // 3.12+: an inlined comprehension's own variables
    FrameSlot v;
    v.name = local_name(r, code, i);
    v.argument = i < nargs;
    v.cell = objects ? i >= nlocals : (kind & (kCell | kFree)) != 0;
    RemoteAddr value = facts.untag(slots[static_cast<size_t>(i)]);
    if (v.cell && !value.null() && r.has_type(value, r.types().cell)) {
      auto inner = m.read_ptr(value + l.require(F::cell_ref));
      value = inner ? *inner : RemoteAddr();
    }
    v.value = value;
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<LocalVar> frame_locals(const ObjectReader& r, const RawFrame& f, const ReprLimits& limits) {
  std::vector<LocalVar> out;
  for (FrameSlot& s : frame_slots(r, f)) {
    LocalVar v;
    v.name = std::move(s.name);
    v.argument = s.argument;
    v.cell = s.cell;
    if (s.value.null()) {
      v.repr = "<unbound>";
    } else {
      ValueRepr vr = value_repr(r, s.value, limits);
      v.repr = std::move(vr.repr);
      v.type = std::move(vr.type);
      v.address = s.value.value();
    }
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace pyinspect
