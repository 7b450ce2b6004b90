module coffer.dev/peers/kube-router

go 1.26

require github.com/cloudnativelabs/kube-router/v2 v2.1.0
