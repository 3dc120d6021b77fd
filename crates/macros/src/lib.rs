//! `#[task]`: marks a function that a process pool may run.
//!
//! Use it through the facade, as `#[concurrent_futures::task]`; see the
//! documentation there. Crates of the workspace that define tasks without
//! the facade write `#[task(crate = ::concurrent_futures_task_wire)]`.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{FnArg, ItemFn, ReturnType, parse_macro_input, spanned::Spanned};

/// Registers a plain function `fn(A) -> R` as a task that a worker process
/// may run. The function must take exactly one argument (use a tuple for
/// several) and must not be generic, async or a method. It is marked
/// `#[inline(never)]` so that it has one address to be recognised by.
///
/// The task is registered as `module_path!()::name`. A raw identifier is
/// registered without its `r#`: `#[task] fn r#type` in `app::jobs` is the
/// task `app::jobs::type`.
///
/// The registry entry is generated inside an anonymous `const _: () = { .. };`
/// block, so it adds no name to the module: any two tasks that may share a
/// module (`foo` and `FOO`, say) expand without colliding.
///
/// The expansion names `::concurrent_futures::__private`. The one
/// argument, `crate = path`, names another crate that has the same
/// `__private` module instead: `#[task(crate = ::concurrent_futures_task_wire)]`
/// is how crates of the workspace that cannot see the facade define tasks.
/// Any other argument is a compile error.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut krate: syn::Path = syn::parse_quote!(::concurrent_futures);
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            krate = meta.value()?.parse()?;
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[task] argument; the only one is `crate = path` \
                 (the crate whose `__private` module the expansion names)",
            ))
        }
    });
    parse_macro_input!(attr with parser);
    let mut func = parse_macro_input!(item as ItemFn);
    match expand(&mut func, &krate) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(func: &mut ItemFn, krate: &syn::Path) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a #[task] cannot be generic: a worker must know the exact argument and result types",
        ));
    }
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new(a.span(), "a #[task] cannot be async"));
    }
    if sig.inputs.len() != 1 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "a #[task] takes exactly one argument; pass several values as one tuple",
        ));
    }
    let arg_ty = match &sig.inputs[0] {
        FnArg::Typed(pat) => (*pat.ty).clone(),
        FnArg::Receiver(r) => {
            return Err(syn::Error::new(
                r.span(),
                "a #[task] cannot be a method; make it a free function",
            ));
        }
    };
    let ret_ty: syn::Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let name = &sig.ident;
    let task_name = name.unraw().to_string();
    // The items below live in their own block, so they need not be unique
    // in the module; they only must not shadow the task inside that block,
    // which a name made of a prefix and the task's own cannot. The function
    // is read once, into `fn_ptr`, outside the static's initializer, where
    // linkme's expansion (`__typecheck`) and the closures (`bytes`, `out`)
    // bring their own bindings into scope.
    let fn_ptr = format_ident!("__CF_TASK_FN_{}", task_name);
    let entry = format_ident!("__CF_TASK_ENTRY_{}", task_name);
    func.attrs.retain(|a| !a.path().is_ident("inline"));
    func.attrs.push(syn::parse_quote!(#[inline(never)]));
    let private = quote!(#krate::__private);
    Ok(quote! {
        #func

        const _: () = {
            #[allow(non_upper_case_globals)]
            const #fn_ptr: fn(#arg_ty) -> #ret_ty = #name;

            #[allow(non_upper_case_globals)]
            #[#private::linkme::distributed_slice(#private::TASKS)]
            #[linkme(crate = #private::linkme)]
            static #entry: #private::TaskEntry =
                #private::TaskEntry {
                    name: ::core::concat!(::core::module_path!(), "::", #task_name),
                    arg: ::core::any::TypeId::of::<#arg_ty>,
                    ret: ::core::any::TypeId::of::<#ret_ty>,
                    addr: || #fn_ptr as usize,
                    invoke: |bytes, out| #private::invoke::<#arg_ty, #ret_ty>(#fn_ptr, bytes, out),
                };
        };
    })
}
