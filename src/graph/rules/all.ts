/** Importing this module registers every backward rule with the autodiff. */
import "./elementwise.js";
import "./matmul.js";
import "./reduce.js";
import "./shape.js";
import "./gather.js";
import "./norm.js";
