// Package loss holds what OSV's losses share: the Reduction of per-element
// values. The losses themselves live in the subpackages huber (pseudo-Huber
// distance), adversarial (hinge losses) and consistency (the consistency
// distillation loss); each is a small function returning per-element values
// or their reduction, as the caller asks.
package loss
