//! The configuration files of the node's daemons, as pure functions of the node's layout: the
//! facts behind each setting were proven on this machine (`/work/shared/peers/kubelet/`, kept in
//! the README's cluster section) and are said where they are set.

use std::path::Path;

/// The addresses of the node: a private /24 on a bridge of our own for pods, another for
/// Services. Nothing else on the machine may use them ([`super::host::check_ranges_free`]).
#[derive(Clone, Debug)]
pub struct Network {
    /// The bridge the harness creates; the CNI bridge plugin attaches every pod to it.
    pub bridge: &'static str,
    /// `a.b.c` of the pod /24: the gateway (the bridge's address, the node's InternalIP, where
    /// the API server, the kubelet and CoreDNS listen) is `.1`, pods get `.10` to `.250`.
    pub pod_prefix: &'static str,
    /// `a.b.c` of the Service /24.
    pub service_prefix: &'static str,
}

/// The node's one network: the recipe's pod range, Services in the /24 after it.
pub const NETWORK: Network = Network {
    bridge: "coffer-br0",
    pod_prefix: "10.244.77",
    service_prefix: "10.244.78",
};

impl Network {
    pub fn gateway(&self) -> String {
        format!("{}.1", self.pod_prefix)
    }
    pub fn pod_cidr(&self) -> String {
        format!("{}.0/24", self.pod_prefix)
    }
    pub fn service_cidr(&self) -> String {
        format!("{}.0/24", self.service_prefix)
    }
}

/// The node's name (its `kubernetes.io/hostname` label, the CN of the kubelet's certificate).
pub const NODE_NAME: &str = "coffer-node";
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// containerd 2's config. `restrict_oom_score_adj`: this VM's bounding set lacks
/// CAP_SYS_RESOURCE, and without it every sandbox fails with "can't get final child's PID from
/// pipe". The sandbox image is pinned (never pulled: no registry is reached), NRI is off (it
/// would create /run/nri), the hugetlb controller is absent from these cgroups.
pub fn containerd(base: &Path, runc: &Path, cni_bin: &Path, sandbox_image: &str) -> String {
    let b = p(base);
    format!(
        r#"version = 3
root = '{b}/containerd/root'
state = '{b}/containerd/state'

[grpc]
  address = '{b}/containerd.sock'

[ttrpc]
  address = '{b}/containerd.sock.ttrpc'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{sandbox_image}'

  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    tolerate_missing_hugetlb_controller = true
    disable_hugetlb_controller = true
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '{runc}'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['{cni_bin}']
      conf_dir = '{b}/cni/net.d'
      max_conf_num = 1

  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'

  [plugins.'io.containerd.nri.v1.nri']
    disable = true
"#,
        runc = p(runc),
        cni_bin = p(cni_bin),
    )
}

/// The CNI network: the bridge as the pods' gateway, no masquerading (nothing leaves the
/// machine), routes only for the pod and Service ranges.
pub fn cni(base: &Path, net: &Network) -> String {
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": "coffer-e2e",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{bridge}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "dataDir": "{ipam}",
        "ranges": [[{{"subnet": "{pods}", "rangeStart": "{prefix}.10", "rangeEnd": "{prefix}.250", "gateway": "{gateway}"}}]],
        "routes": [{{"dst": "{pods}"}}, {{"dst": "{services}"}}]
      }}
    }},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
  ]
}}
"#,
        bridge = net.bridge,
        ipam = p(&base.join("cni/ipam")),
        pods = net.pod_cidr(),
        services = net.service_cidr(),
        prefix = net.pod_prefix,
        gateway = net.gateway(),
    )
}

/// The kubelet's configuration. cgroups are v1 here (`failCgroupV1: false`), with the cgroupfs
/// driver; `oomScoreAdj: 0` for want of CAP_SYS_RESOURCE. Its API (logs, exec) listens on the
/// gateway for the API server only: client certificates of `ca` and webhook authorization.
/// `syncFrequency: 10s` (default 1 m): a renewed Secret reaches the pods' volumes within
/// seconds, so the certificate renewal steps do not wait a minute for each.
pub fn kubelet(base: &Path, net: &Network, ca: &Path, port: u16, healthz_port: u16) -> String {
    let b = p(base);
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://{b}/containerd.sock
imageServiceEndpoint: unix://{b}/containerd.sock
failSwapOn: false
address: {gateway}
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz_port}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization:
  mode: Webhook
clusterDNS: [{gateway}]
clusterDomain: {CLUSTER_DOMAIN}
resolvConf: {b}/resolv.conf
podLogsDir: {b}/pod-logs
registerNode: true
syncFrequency: 10s
imageGCHighThresholdPercent: 100
serializeImagePulls: false
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
oomScoreAdj: 0
"#,
        gateway = net.gateway(),
        ca = p(ca),
    )
}

/// kube-proxy in iptables mode. Every Service connection is masqueraded: a pod reaching a
/// Service whose endpoint sits on the same bridge gets its answer back through the host's
/// conntrack whatever the bridge-netfilter setting. Conntrack sysctls are left alone, NodePorts
/// listen on the gateway only (no `route_localnet`).
pub fn kube_proxy(kubeconfig: &Path, net: &Network, healthz: u16, metrics: u16) -> String {
    format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
hostnameOverride: {NODE_NAME}
mode: iptables
clusterCIDR: {pods}
detectLocalMode: ClusterCIDR
nodePortAddresses: ["{gateway}/32"]
healthzBindAddress: 127.0.0.1:{healthz}
metricsBindAddress: 127.0.0.1:{metrics}
iptables:
  masqueradeAll: true
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"#,
        kubeconfig = p(kubeconfig),
        pods = net.pod_cidr(),
        gateway = net.gateway(),
    )
}

/// CoreDNS on the gateway: Service and pod names of the cluster, nothing forwarded outside.
pub fn corefile(kubeconfig: &Path, net: &Network) -> String {
    format!(
        r#".:53 {{
    bind {gateway}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} test
        pods insecure
    }}
    cache 5
}}
"#,
        gateway = net.gateway(),
        kubeconfig = p(kubeconfig),
    )
}

/// The default StorageClass (`local`, WaitForFirstConsumer) and `count` static local
/// PersistentVolumes on this node, one directory each under `volumes`. Local volumes (unlike
/// hostPath) get the pod's `fsGroup`, as a cloud disk does.
pub fn storage(volumes: &Path, count: usize) -> String {
    let mut out = String::from(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: local\n  annotations:\n    \
         storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner: kubernetes.io/no-provisioner\n\
         volumeBindingMode: WaitForFirstConsumer\n",
    );
    for i in 0..count {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: local-{i}\nspec:\n  \
             capacity: {{storage: 50Gi}}\n  accessModes: [ReadWriteOnce]\n  persistentVolumeReclaimPolicy: Retain\n  \
             storageClassName: local\n  local: {{path: {path}}}\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      \
             - matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [{NODE_NAME}]}}]\n",
            path = p(&volumes.join(format!("local-{i}"))),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_private_slash_24s_apart() {
        assert_eq!(NETWORK.gateway(), "10.244.77.1");
        assert_ne!(NETWORK.pod_cidr(), NETWORK.service_cidr());
        assert!(
            NETWORK.bridge.len() <= 15,
            "Linux interface names are at most 15 bytes"
        );
    }

    #[test]
    fn the_cni_config_is_json_routing_pods_and_services_through_the_gateway() {
        let v: serde_json::Value =
            serde_json::from_str(&cni(Path::new("/b"), &NETWORK)).expect("JSON");
        let bridge = &v["plugins"][0];
        assert_eq!(bridge["bridge"], "coffer-br0");
        assert_eq!(bridge["ipMasq"], false);
        let routes = bridge["ipam"]["routes"].as_array().expect("routes");
        assert_eq!(
            routes.len(),
            2,
            "no default route: nothing leaves the machine"
        );
    }

    #[test]
    fn storage_names_one_default_class_and_every_volume() {
        let yaml = storage(Path::new("/v"), 3);
        assert_eq!(yaml.matches("kind: PersistentVolume\n").count(), 3);
        assert!(yaml.contains("path: /v/local-2"));
        assert!(yaml.contains("is-default-class: \"true\""));
    }
}
