/** The autodiff entry point, with every backward rule registered. */
import "./rules/all.js";

export { defineGrad, type GradRule, grad, hasGradRule } from "./autodiff.js";
