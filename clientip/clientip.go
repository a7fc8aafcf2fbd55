// Package clientip decides which address a request came from: the TCP
// peer, or — only when the peer is a configured trusted proxy — the last
// address in X-Forwarded-For that is not itself a trusted proxy. Behind a
// TLS-terminating proxy every client would otherwise share the proxy's
// address (and its sign-in throttle).
//
//	res, err := clientip.New([]string{"10.0.0.0/8"})
//	handler = res.Middleware(handler)
//	ip := clientip.From(r) // in any handler below
package clientip

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver knows the trusted proxies.
type Resolver struct {
	trusted []netip.Prefix
}

// New parses CIDRs (a bare address means that one host).
func New(cidrs []string) (*Resolver, error) {
	r := &Resolver{}
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q: want a CIDR such as 10.0.0.0/8 or an address", c)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		r.trusted = append(r.trusted, p.Masked())
	}
	return r, nil
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// maxHops bounds how much of a forged X-Forwarded-For is looked at.
const maxHops = 16

// Resolve returns the client address of req.
func (r *Resolver) Resolve(req *http.Request) string {
	return r.ResolveFrom(PeerIP(req), req.Header.Values("X-Forwarded-For"))
}

// ResolveFrom returns the client address of a request from peer (an
// address without port) carrying forwarded (X-Forwarded-For values, or
// gRPC's x-forwarded-for metadata).
func (r *Resolver) ResolveFrom(peer string, forwarded []string) string {
	if r == nil || len(r.trusted) == 0 {
		return peer
	}
	a, err := netip.ParseAddr(peer)
	if err != nil || !r.isTrusted(a) {
		return peer
	}
	// Walk X-Forwarded-For from the right (the hop nearest us): the first
	// address that is not a trusted proxy is the client. Anything to its
	// left was written by the client and proves nothing.
	var hops []string
	for _, h := range forwarded {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := peer
	for i, n := len(hops)-1, 0; i >= 0 && n < maxHops; i, n = i-1, n+1 {
		h := strings.TrimSpace(hops[i])
		ha, err := netip.ParseAddr(h)
		if err != nil {
			break // garbage: stop at the last address we could trust
		}
		client = ha.Unmap().String()
		if !r.isTrusted(ha) {
			break
		}
	}
	return client
}

type forwardKey struct{}

// WithForwarded returns a context whose outgoing requests (mcr-web's to
// mcrsrv, REST or gRPC) name ip as the client they act for.
func WithForwarded(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, forwardKey{}, ip)
}

// Forwarded is the address WithForwarded put in ctx, or "".
func Forwarded(ctx context.Context) string {
	ip, _ := ctx.Value(forwardKey{}).(string)
	return ip
}

type key struct{}

// Middleware stores the resolved client address in each request's context.
func (r *Resolver) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ip := r.Resolve(req)
		next.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), key{}, ip)))
	})
}

// From returns the address Middleware resolved, or the peer address when
// the request did not pass through it.
func From(req *http.Request) string {
	if ip, ok := req.Context().Value(key{}).(string); ok {
		return ip
	}
	return PeerIP(req)
}

// PeerIP is the TCP peer of req without the port.
func PeerIP(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}
