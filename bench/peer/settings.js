// Node-RED settings of the peer benchmark (bench/peer_mqtt_to_historian.py): no editor, no
// projects, listening on 127.0.0.1 only, the flow and its plain credentials from the bench's
// working directory (KW_NR_* variables set by the bench).
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.KW_NR_PORT, 10),
    userDir: process.env.KW_NR_USER_DIR,
    flowFile: process.env.KW_NR_FLOW_FILE,
    nodesDir: process.env.KW_NR_NODES_DIR,
    credentialSecret: false,
    disableEditor: true,
    httpAdminRoot: false,
    flowFilePretty: true,
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    logging: { console: { level: "warn", metrics: false, audit: false } },
};
