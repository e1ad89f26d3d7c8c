// Node-RED settings of the benchmark's peer (dolbom/bench/targets.py starts it).
//
// Loopback only, no editor and no admin API: the flow is fixed (flows.json) and
// nothing else listens. Broker and InfluxDB addresses come from the environment
// (${DOLBOM_PEER_*} in flows.json); the credentials are written by the benchmark
// into flows_cred.json in the run's own userDir (credentialSecret: false), never
// into this repository.
module.exports = {
    flowFile: "flows.json",
    credentialSecret: false,
    flowFilePretty: true,
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.DOLBOM_PEER_PORT || "1880", 10),
    httpAdminRoot: false,
    httpNodeRoot: false,
    disableEditor: true,
    logging: {
        console: { level: "warn", metrics: false, audit: false },
    },
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    telemetry: { enabled: false, updateNotification: false },
    externalModules: {
        autoInstall: false,
        palette: { allowInstall: false, allowUpload: false },
        modules: { allowInstall: false },
    },
    functionExternalModules: false,
    editorTheme: { projects: { enabled: false } },
};
