# shellcheck shell=bash
# Sourced by e2e/kind/run.sh: reads the shared scenario (e2e/scenario/scenario.env) and writes the
# client Job that runs e2e/scenario/client.sh inside the cluster.

# load_scenario FILE: every KEY=VALUE line of FILE becomes SCENARIO_KEY (values are taken as
# written: no shell expansion, spaces kept), the same reading as e2e/src/scenario.rs.
load_scenario() {
  local line key value
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line#"${line%%[![:space:]]*}"}
    case "$line" in '' | '#'*) continue ;; esac
    key=${line%%=*}
    value=${line#*=}
    [ "$key" != "$line" ] || { echo "scenario.env: not KEY=VALUE: $line" >&2; return 1; }
    printf -v "SCENARIO_${key// /}" '%s' "$value"
  done <"$1"
}

# client_job NAMESPACE TENANT ENDPOINT: the Job running `client.sh put` then `client.sh get` against
# the Tenant's Service, as the Tenant's root user, trusting the Tenant's CA. It satisfies the
# namespace's `restricted` Pod Security level.
client_job() {
  local ns=$1 tenant=$2 endpoint=$3
  cat <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: scenario-client
  namespace: $ns
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        runAsGroup: 1000
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: client
          image: docker.io/amazon/aws-cli:2.22.0
          command: [bash, -c, "bash /scenario/client.sh put && bash /scenario/client.sh get"]
          envFrom:
            - configMapRef: {name: scenario-env}
          env:
            - {name: S3_ENDPOINT, value: "$endpoint"}
            - name: AWS_ACCESS_KEY_ID
              valueFrom: {secretKeyRef: {name: $tenant-root, key: rootUser}}
            - name: AWS_SECRET_ACCESS_KEY
              valueFrom: {secretKeyRef: {name: $tenant-root, key: rootPassword}}
            - {name: AWS_CA_BUNDLE, value: /ca/ca.crt}
            - {name: SCENARIO_WORK, value: /work}
            - {name: HOME, value: /work}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
          volumeMounts:
            - {name: scenario, mountPath: /scenario, readOnly: true}
            - {name: ca, mountPath: /ca, readOnly: true}
            - {name: work, mountPath: /work}
      volumes:
        - name: scenario
          configMap: {name: scenario-client}
        - name: ca
          secret:
            secretName: $tenant-ca
            items: [{key: ca.crt, path: ca.crt}]
        - name: work
          emptyDir: {}
YAML
}
