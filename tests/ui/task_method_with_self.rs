use dagger::task;

struct Counter(u32);

impl Counter {
    #[task]
    fn bump(&mut self) -> u32 {
        self.0 += 1;
        self.0
    }
}

fn main() {}
