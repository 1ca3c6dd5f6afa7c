// Loads the wasm app (a module script: inline scripts are forbidden by the page's CSP).
import init from "./k2_ui.js";
init();
