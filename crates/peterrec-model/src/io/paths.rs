//! Walking a module's parameters by name (`backbone.blocks.3.mp1.down.weight`).
//!
//! Freezing, parameter accounting and the file formats all address parameters by their module
//! path, so that the trainable subset of a strategy can be computed on any backend.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{backend::Backend, Tensor, TensorData};

/// A named float parameter copied to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Module path joined with dots.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

struct Collect<'a, F: Fn(&str) -> bool> {
    stack: Vec<String>,
    keep: &'a F,
    out: Vec<NamedTensor>,
    shapes_only: bool,
}

impl<B: Backend, F: Fn(&str) -> bool> ModuleVisitor<B> for Collect<'_, F> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let name = self.stack.join(".");
        if !(self.keep)(&name) {
            return;
        }
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let values = if self.shapes_only {
            Vec::new()
        } else {
            tensor
                .into_data()
                .convert::<f32>()
                .to_vec()
                .expect("float parameter")
        };
        self.out.push(NamedTensor {
            name,
            shape,
            values,
        });
    }
}

/// Every float parameter whose dotted path satisfies `keep`, with its values, in module order.
pub fn collect_params<B: Backend, M: Module<B>>(
    module: &M,
    keep: impl Fn(&str) -> bool,
) -> Vec<NamedTensor> {
    let mut v = Collect {
        stack: Vec::new(),
        keep: &keep,
        out: Vec::new(),
        shapes_only: false,
    };
    module.visit(&mut v);
    v.out
}

/// Names and shapes (no values) of every float parameter, in module order.
pub fn param_shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
    let keep = |_: &str| true;
    let mut v = Collect {
        stack: Vec::new(),
        keep: &keep,
        out: Vec::new(),
        shapes_only: true,
    };
    module.visit(&mut v);
    v.out.into_iter().map(|t| (t.name, t.shape)).collect()
}

struct SetRequireGrad<'a, F: Fn(&str) -> bool> {
    stack: Vec<String>,
    trainable: &'a F,
}

impl<B: Backend, F: Fn(&str) -> bool> ModuleMapper<B> for SetRequireGrad<'_, F> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let trainable = (self.trainable)(&self.stack.join("."));
        param.set_require_grad(trainable)
    }
}

/// Marks the parameters whose path satisfies `trainable` as requiring gradients and every other
/// parameter as frozen: on an autodiff backend frozen parameters get no gradient (and so no
/// optimizer state).
pub fn set_trainable<B: Backend, M: Module<B>>(module: M, trainable: impl Fn(&str) -> bool) -> M {
    module.map(&mut SetRequireGrad {
        stack: Vec::new(),
        trainable: &trainable,
    })
}

struct Replace<'a> {
    stack: Vec<String>,
    values: &'a mut HashMap<String, NamedTensor>,
    errors: Vec<(String, String)>,
}

impl<B: Backend> ModuleMapper<B> for Replace<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = self.stack.join(".");
        let Some(new) = self.values.remove(&name) else {
            return param;
        };
        let (id, old, mapper) = param.consume();
        if old.dims().as_slice() != new.shape.as_slice() {
            self.errors.push((
                name,
                format!("shape {:?} in file, {:?} in model", new.shape, old.dims()),
            ));
            return Param::from_mapped_value(id, old, mapper);
        }
        let require_grad = old.is_require_grad();
        let mut tensor =
            Tensor::<B, D>::from_data(TensorData::new(new.values, new.shape), &old.device());
        if require_grad {
            tensor = tensor.require_grad();
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Replaces parameters by name. Returns the module and the problems found: `(name, reason)` for
/// each tensor whose shape differs, and for each given tensor the module has no parameter for.
pub fn replace_params<B: Backend, M: Module<B>>(
    module: M,
    tensors: Vec<NamedTensor>,
) -> (M, Vec<(String, String)>) {
    let mut values: HashMap<String, NamedTensor> =
        tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut r = Replace {
        stack: Vec::new(),
        values: &mut values,
        errors: Vec::new(),
    };
    let module = module.map(&mut r);
    let mut errors = r.errors;
    let mut unused: Vec<String> = values.into_keys().collect();
    unused.sort();
    errors.extend(
        unused
            .into_iter()
            .map(|n| (n, "no such parameter in the model".to_string())),
    );
    (module, errors)
}
