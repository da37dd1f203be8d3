//===- grammar/iptables.hpp - PEGTL grammars for iptables values -*- C++
//-*-===//
//
/// \file
/// The shapes of the values iptables options take, as PEGTL rules with no
/// actions: the frontend (compiler/frontend) binds actions to them. Option
/// words themselves are walked the way iptables' getopt_long walks them, so
/// the grammar here starts where an option's argument starts.
///
/// Numbers are matched loosely (any run of digits) and range-checked by the
/// actions, so an error can say "invalid mask `33'" rather than "parse
/// error".
//===----------------------------------------------------------------------===//
#pragma once

#include <tao/pegtl.hpp>

namespace r2x::grammar {
namespace pegtl = tao::pegtl;
using namespace tao::pegtl;

// --- ports: --sport / --dport ----------------------------------------------
// A port is a number or a service name from /etc/services; a range is
// "lo:hi" with either end optional.
// Numbers are read as C's strtoul(base 0) reads them: 0x hex, 0 octal.
struct port_number
    : sor<seq<one<'0'>, one<'x', 'X'>, plus<xdigit>>, plus<digit>> {};
struct service_name
    : seq<alpha, star<sor<alnum, one<'-', '_', '.', '+', '/'>>>> {};
struct port : sor<seq<port_number, at<sor<one<':'>, eof>>>, service_name> {};
struct range_lo : port {};
struct range_hi : port {};
struct range_sep : one<':'> {};
struct port_range : seq<opt<range_lo>, opt<range_sep, opt<range_hi>>, eof> {};

// --- protocols: -p ----------------------------------------------------------
// A number as xtables_strtoui reads it (0x hex, a leading 0 octal); its
// value and range are the action's (xtablesParseProtocol).
struct proto_number
    : seq<sor<seq<one<'0'>, one<'x', 'X'>, plus<xdigit>>, plus<digit>>, eof> {};
struct proto_name : seq<alpha, star<sor<alnum, one<'-', '_', '.', '+'>>>, eof> {
};
struct protocol : sor<proto_number, proto_name> {};

// --- interfaces: -i ---------------------------------------------------------
// Any bytes but NUL; a trailing '+' is the wildcard, and "+" alone matches
// every interface, as in iptables. The length is checked by the action;
// like iptables, names the kernel cannot have ('/', ' ') are accepted and
// simply never match.
struct iface_wildcard : seq<one<'+'>, eof> {};
struct iface_char : seq<not_at<iface_wildcard>, any> {};
struct interface : seq<star<iface_char>, opt<iface_wildcard>, eof> {};

// --- chain and target names -------------------------------------------------
struct chain_name : seq<plus<sor<alnum, one<'-', '_', '.'>>>, eof> {};

} // namespace r2x::grammar
