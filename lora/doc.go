// Package lora is LoRA (low-rank adaptation) for the module's models: an
// update W x + (α/r)·B A x on Linear, Conv2d and Conv3d layers (for
// convolutions A has the layer's kernel and B is 1×1), attached to the
// layers whose checkpoint path matches a target by suffix, as peft does.
//
// Entry points: Inject adds fresh adapters (A random, B zero, so the model
// is unchanged); Load reads a peft adapter folder (adapter_config.json and
// adapter_model.safetensors) and Save writes one; Set.Merge folds the
// update into the base weights for inference and Set.Unmerge takes it out
// again; Set.Enable switches the update on and off; Set.Trainable lists the
// adapter parameters.
package lora
