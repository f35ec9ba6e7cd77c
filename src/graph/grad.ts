/** The autodiff entry point, with every backward rule registered. */
import "./rules/all.js";

export {
  defineGrad,
  type GradRule,
  grad,
  gradRuleOf,
  hasGradRule,
  registeredGradOps,
} from "./autodiff.js";
