export * from "./adapter.js";
export * from "./config.js";
export * from "./init.js";
export * from "./merge.js";
export * from "./svd.js";
export * from "./targets.js";
