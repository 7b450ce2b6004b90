//go:build tools

// Package tools pins kube-router for `go build github.com/cloudnativelabs/kube-router/v2/cmd/kube-router`:
// the node runs its network policy firewall only (no routing, no service proxy).
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
