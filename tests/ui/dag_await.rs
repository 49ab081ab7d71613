use dagger::prelude::*;

async fn fetch() -> usize {
    1
}

fn main() {
    let _ = async {
        dag! {
            let a = fetch().await;
            a
        }
    };
}
