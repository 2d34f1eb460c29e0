package osv

import (
	"fmt"
	"path/filepath"
)

// Export writes the student in the two forms the ecosystem loads:
// dir/lora (peft: adapter_model.safetensors and adapter_config.json) and
// dir/unet (a diffusers UNet folder with the adapters merged into the
// weights, ready for a pipeline folder or unet.Load). The trainer's own
// state is unchanged: the merge is undone after saving.
func (t *Trainer) Export(dir string) error {
	if t.closed() {
		return fmt.Errorf("osv: trainer is closed")
	}
	set := t.Student.LoRA
	if err := set.Save(filepath.Join(dir, "lora")); err != nil {
		return err
	}
	if err := set.Merge(); err != nil {
		return err
	}
	saveErr := t.Teacher.UNet.Save(filepath.Join(dir, "unet"))
	if err := set.Unmerge(); err != nil {
		return err
	}
	return saveErr
}
